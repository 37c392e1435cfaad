// otgen eval end to end: the printed metrics equal the library's on the same files; bad options exit 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "otgen/metrics/evaluation.h"
#include "otgen/metrics/metrics.h"
#include "otgen/core/npy.h"
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


std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct EvalFiles {
  TempDir dir;
  Points x = test::gaussian_points(300, 4, 11), y = test::gaussian_points(250, 4, 12, 1.3f, 0.4f),
         t = test::gaussian_points(400, 4, 13, 1.1f);
  std::string base;
  EvalFiles() {
    write_npy(dir.file("x.npy"), x);
    write_npy(dir.file("y.npy"), y);
    write_npy(dir.file("t.npy"), t);
    write_npy(dir.file("t5.npy"), test::gaussian_points(50, 5, 14));
    base = "eval --samples " + dir.file("x.npy") + " --reference " + dir.file("y.npy");
  }
};

TEST(CliEval, FdPcaIsTheLibrarysAndOutIsTheStdoutJsonWrittenAtomically) {
  EvalFiles f;
  const std::string out = f.dir.file("eval.json");
  const auto r = run_cli(f.base + " --metrics fd-pca,mmd --pca-data " + f.dir.file("t.npy") + " --pca-dim 2 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);  // not a terminal: JSON
  EXPECT_DOUBLE_EQ(j["frechet_pca"].get<double>(), frechet_distance(f.x, f.y, pca_basis(f.t, 2)));
  EXPECT_EQ(j["frechet_pca_dim"], 2);
  EXPECT_EQ(j["pca_data"], f.dir.file("t.npy"));
  // MMD: the bandwidths used are reported, and the per-bandwidth values sum to mmd2.
  const double h = median_distance(f.x, f.y);
  EXPECT_DOUBLE_EQ(j["mmd_median_distance"].get<double>(), h);
  ASSERT_EQ(j["mmd_bandwidths"].size(), 3u);
  double total = 0;
  for (size_t b = 0; b < 3; ++b) {
    const double sigma = j["mmd_bandwidths"][b].get<double>();
    EXPECT_DOUBLE_EQ(sigma, j["mmd_scales"][b].get<double>() * h);
    EXPECT_DOUBLE_EQ(j["mmd_gammas"][b].get<double>(), 1.0 / (2 * sigma * sigma));
    total += j["mmd2_per_bandwidth"][b].get<double>();
  }
  EXPECT_NEAR(j["mmd2"].get<double>(), total, 1e-12);
  EXPECT_EQ(nlohmann::json::parse(slurp(out)), j);
  for (const auto& e : std::filesystem::directory_iterator(f.dir.path))  // no temporary file left
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(CliEval, BootstrapIntervalsRepeatWithTheSeedAndTableFormatShowsThem) {
  EvalFiles f;
  const std::string args = f.base + " --metrics energy,fd,prd --bootstrap 30 --seed ";
  const auto a = run_cli(args + "4"), b = run_cli(args + "4"), c = run_cli(args + "5");
  ASSERT_EQ(a.exit_code, 0) << a.out;
  EXPECT_EQ(a.out, b.out);
  const auto ja = nlohmann::json::parse(a.out), jc = nlohmann::json::parse(c.out);
  EXPECT_NE(ja["energy_ci"], jc["energy_ci"]);
  EXPECT_EQ(ja["energy"], jc["energy"]);
  for (const char* key : {"energy", "frechet"}) {
    EXPECT_LT(ja[std::string(key) + "_ci"][0].get<double>(), ja[key].get<double>()) << key;
    EXPECT_GT(ja[std::string(key) + "_ci"][1].get<double>(), ja[key].get<double>()) << key;
  }
  EXPECT_FALSE(ja.contains("precision_ci"));
  const auto t = run_cli(args + "4 --format table");
  ASSERT_EQ(t.exit_code, 0) << t.out;
  char energy_row[256];
  std::snprintf(energy_row, sizeof energy_row, "%.6g       [%.6g, %.6g]", ja["energy"].get<double>(),
                ja["energy_ci"][0].get<double>(), ja["energy_ci"][1].get<double>());
  EXPECT_NE(t.out.find("95.0% bootstrap interval"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("energy distance"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find(energy_row), std::string::npos) << energy_row << "\n" << t.out;
  EXPECT_NE(t.out.find("(none)"), std::string::npos) << t.out;  // prd has no interval
  EXPECT_EQ(t.out.find('{'), std::string::npos) << t.out;
}

TEST(CliEval, BadFdPcaAndBootstrapOptionsExitTwoNamingThem) {
  EvalFiles f;
  const std::string pca = f.base + " --metrics fd-pca";
  for (const auto& [args, fragment] : std::vector<std::pair<std::string, std::string>>{
           {pca, "invalid --pca-data = (not given)"},
           {pca + " --pca-data " + f.dir.file("t5.npy"), "invalid --pca-data = points of dimension 5"},
           {pca + " --pca-data " + f.dir.file("missing.npy"), "--pca-data"},
           {pca + " --pca-data " + f.dir.file("t.npy") + " --pca-dim 0", "invalid --pca-dim = 0"},
           {pca + " --pca-data " + f.dir.file("t.npy") + " --pca-dim 5", "invalid --pca-dim = 5"},
           {f.base + " --pca-data " + f.dir.file("t.npy"), "invalid --pca-data"},
           {f.base + " --bootstrap -1", "invalid --bootstrap = -1"},
           {f.base + " --bootstrap many", "--bootstrap"},
           {f.base + " --format xml", "--format"}}) {
    const auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(fragment), std::string::npos) << fragment << "\n" << r.out;
  }
}

TEST(CliEval, BadOutIsReportedBeforeReadingInputsAndNeverOverwritesThem) {
  EvalFiles f;
  const std::string before = slurp(f.dir.file("x.npy"));
  std::filesystem::create_directory(f.dir.file("folder"));
  // A missing --reference would fail when read: the --out error comes first, so nothing ran.
  const std::string missing = "eval --samples " + f.dir.file("x.npy") + " --reference " + f.dir.file("missing.npy");
  for (const auto& [args, fragment] : std::vector<std::pair<std::string, std::string>>{
           {missing + " --out " + f.dir.file("no/such/folder/e.json"), "a file in an existing folder"},
           {missing + " --out " + f.dir.file("folder"), "not a folder"},
           {missing + " --out /proc/otgen_eval.json", "a writable location"},
           {missing + " --out " + f.dir.file("x.npy"), "a path other than --samples"},
           {missing + " --out " + f.dir.file("folder/../x.npy"), "a path other than --samples"},
           {f.base + " --out " + f.dir.file("y.npy"), "a path other than --reference"},
           {f.base + " --metrics fd-pca --pca-data " + f.dir.file("t.npy") + " --out " + f.dir.file("t.npy"),
            "a path other than --pca-data"}}) {
    const auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("invalid --out"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(fragment), std::string::npos) << fragment << "\n" << r.out;
  }
  EXPECT_EQ(slurp(f.dir.file("x.npy")), before);
}

}  // namespace
}  // namespace otgen
