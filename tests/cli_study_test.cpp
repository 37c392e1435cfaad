// otgen study on the quick config (examples/study/quick.json): every output is written, every cell of
// table.md re-derives from the rows of study.json, a second run reuses the trained models, and bad
// configs are refused with exit code 2 naming the key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace otgen {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

TEST(CliStudy, QuickStudyWritesEveryOutputAndItsTableRederivesFromTheJson) {
  test::TempDir dir;
  const std::string out = dir.file("study");
  const std::string config = std::string(OTGEN_SOURCE_DIR) + "/examples/study/quick.json";
  const auto r = test::run_cli("study --config " + config + " --out " + out + " -q");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* f : {"study.json", "table.md", "metric_vs_nfe.png", "cost.png", "samples.png", "reference.npy"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  // The PLplot charts: PNGs of the documented size (480 x 400 per chart, + 36 px for a figure title),
  // not blank (a white image compresses to a few hundred bytes).
  for (const auto& [f, w, h] : {std::tuple{"metric_vs_nfe.png", 960, 436}, std::tuple{"cost.png", 960, 400}}) {
    const std::string png = slurp(out + "/" + f);
    ASSERT_GT(png.size(), 24u) << f;
    EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << f;
    auto be32 = [&](size_t at) {
      uint32_t v = 0;
      for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(png[at + i]);
      return static_cast<int>(v);
    };
    EXPECT_EQ(png.substr(12, 4), "IHDR") << f;
    EXPECT_EQ(be32(16), w) << f;
    EXPECT_EQ(be32(20), h) << f;
    EXPECT_GT(png.size(), 10000u) << f;
  }
  const json doc = json::parse(slurp(out + "/study.json"));
  const json cfg = json::parse(slurp(config));
  const size_t couplings = cfg["couplings"].size(), seeds = cfg["seeds"].size(), solvers = cfg["solvers"].size();
  ASSERT_EQ(doc["rows"].size(), couplings * seeds * solvers);
  // Recompute mean and std over seeds of each (coupling, solver, metric) from the rows; the table cell
  // must be exactly "mean ± std" in the table's format.
  const std::string table = slurp(out + "/table.md");
  for (const std::string metric : {"energy", "sw2"}) {
    for (const auto& [cname, copts] : cfg["couplings"].items()) {
      std::string row = "| " + cname + " |";
      for (const auto& s : cfg["solvers"]) {
        std::vector<double> v, nfe;
        for (const auto& x : doc["rows"])
          if (x["coupling"] == cname && x["solver"] == s) v.push_back(x["metrics"][metric]), nfe.push_back(x["nfe"]);
        ASSERT_EQ(v.size(), seeds);
        double m = 0, sd = 0, mn = 0;
        for (size_t i = 0; i < v.size(); ++i) m += v[i] / v.size(), mn += nfe[i] / nfe.size();
        for (double x : v) sd += (x - m) * (x - m);
        sd = std::sqrt(sd / (v.size() - 1));
        row += " " + fmt(m) + " ± " + fmt(sd) + (s == "dopri5" ? " (NFE " + fmt(mn) + ")" : "") + " |";
        EXPECT_NEAR(doc["summary"][cname][s.get<std::string>()][metric]["mean"].get<double>(), m, 1e-12 * (1 + std::abs(m)));
      }
      EXPECT_NE(table.find(row), std::string::npos) << "missing row: " << row << "\n" << table;
    }
  }
  // Euler K takes K evaluations.
  for (const auto& x : doc["rows"])
    if (x["solver"] == "euler:4") EXPECT_EQ(x["nfe"], 4);
  // Every command is recorded; a second run reuses the six trained models.
  EXPECT_GE(doc["commands"].size(), couplings * seeds * (1 + 2 * solvers));
  const auto again = test::run_cli("study --config " + config + " --out " + out + " -q");
  ASSERT_EQ(again.exit_code, 0) << again.out;
  const json doc2 = json::parse(slurp(out + "/study.json"));
  int reused = 0;
  for (const auto& c : doc2["commands"]) reused += c.get<std::string>().rfind("# reused", 0) == 0;
  EXPECT_EQ(reused, static_cast<int>(couplings * seeds));
  EXPECT_EQ(doc2["rows"], doc["rows"]);  // same models, same seeds: the same numbers
}

TEST(CliStudy, BadConfigsExitTwoNamingTheKey) {
  test::TempDir dir;
  auto run_with = [&](const std::string& content) {
    std::ofstream(dir.file("c.json")) << content;
    return test::run_cli("study --config " + dir.file("c.json") + " --out " + dir.file("o") + " -q");
  };
  auto r = run_with(R"({"data": "8gaussians", "seedz": [1]})");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("seedz"), std::string::npos) << r.out;
  r = run_with(R"({"data": "8gaussians", "solvers": ["euler"]})");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("euler:K"), std::string::npos) << r.out;
  r = run_with(R"({"data": "8gaussians", "seeds": [-1]})");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = run_with(R"({"seeds": [1]})");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("data"), std::string::npos) << r.out;
  r = run_with("{not json");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = test::run_cli("study --config " + dir.file("missing.json") + " --out " + dir.file("o"));
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--config"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace otgen
