// otgen eval end to end: the printed metrics equal the library's on the same files; bad options exit 2.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "otgen/metrics.h"
#include "otgen/npy.h"
#include "test_util.h"

namespace otgen {
namespace {

using test::run_cli;
using test::TempDir;

TEST(CliEval, PrintsTheLibrarysMetricsForTheFiles) {
  TempDir dir;
  const Points x = test::gaussian_points(300, 3, 1), y = test::gaussian_points(400, 3, 2, 1.2f, 0.3f);
  write_npy(dir.file("x.npy"), x);
  write_npy(dir.file("y.npy"), y);
  const auto r = run_cli("eval --samples " + dir.file("x.npy") + " --reference " + dir.file("y.npy") +
                         " --metrics energy,sw2,w1,fd,w2,prd --k 4 --max-points 200 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_DOUBLE_EQ(j["energy"].get<double>(), energy_distance(x, y));
  EXPECT_DOUBLE_EQ(j["mean_marginal_w1"].get<double>(), mean_marginal_w1(x, y));
  EXPECT_DOUBLE_EQ(j["frechet"].get<double>(), frechet_distance(x, y));
  EXPECT_EQ(j["w2_points"].get<int64_t>(), 200);
  const auto pr = precision_recall(y, x, 4);
  EXPECT_DOUBLE_EQ(j["precision"].get<double>(), pr.precision);
  EXPECT_DOUBLE_EQ(j["recall"].get<double>(), pr.recall);
  EXPECT_GT(j["sw2"].get<double>(), 0.0);
}

TEST(CliEval, BadOptionsExitWithCodeTwoNamingThem) {
  TempDir dir;
  write_npy(dir.file("x.npy"), test::gaussian_points(20, 2, 1));
  write_npy(dir.file("y3.npy"), test::gaussian_points(20, 3, 1));
  const std::string base = "eval --samples " + dir.file("x.npy") + " --reference ";
  for (const auto& [args, fragment] : std::vector<std::pair<std::string, std::string>>{
           {base + dir.file("x.npy") + " --metrics energy,fid", "--metrics"},
           {base + dir.file("y3.npy"), "--reference"},
           {base + dir.file("x.npy") + " --metrics prd --k 0", "--k"},
           {base + dir.file("missing.npy"), "--reference"}}) {
    const auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(fragment), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace otgen
