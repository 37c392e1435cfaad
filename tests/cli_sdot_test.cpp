// otgen sdot assign end to end: files in, int64 indices out, against a naive double loop; user errors
// give one line on stderr and exit code 2; the progress lines of a piped `sdot fit`.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "otgen/core/blas_threads.h"
#include "otgen/core/cpu_features.h"
#include "otgen/core/npy.h"
#include "otgen/kernels/scores.h"
#include "otgen/core/rng.h"
#include "test_util.h"

namespace otgen {
namespace {

using test::run_cli;
using test::TempDir;

Points normal_points(int64_t n, int64_t d, uint64_t seed) {
  Points p(n, d);
  Rng(seed).fill_normal(std::span<float>(p.data));
  return p;
}

TEST(CliSdotAssign, WritesTheArgmaxOfInnerProductPlusPotentialMinusHalfNorm) {
  TempDir dir;
  const int64_t n = 300, m = 257, d = 12;
  const Points x = normal_points(n, d, 1), y = normal_points(m, d, 2);
  std::vector<double> g(m);
  Rng(3).fill_normal(std::span<double>(g));
  write_npy(dir.file("y.npy"), y);
  write_npy(dir.file("x.npy"), x);
  write_npy(dir.file("g.npy"), g, {m});
  const auto r = run_cli("sdot assign --data " + dir.file("y.npy") + " --potential " + dir.file("g.npy") +
                         " --noise " + dir.file("x.npy") + " --out " + dir.file("idx.npy") + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::vector<int64_t> idx = read_int64_npy(dir.file("idx.npy"), "idx");
  ASSERT_EQ(static_cast<int64_t>(idx.size()), n);
  int64_t exact = 0;
  for (int64_t i = 0; i < n; ++i) {
    // The cost form: argmin_j |x_i - y_j|^2 / 2 - g_j, in double.
    double best = INFINITY, second = INFINITY;
    int64_t arg = -1;
    for (int64_t j = 0; j < m; ++j) {
      double c = 0;
      for (int64_t k = 0; k < d; ++k) c += std::pow(double(x.row(i)[k]) - y.row(j)[k], 2);
      c = 0.5 * c - g[j];
      if (c < best) second = best, best = c, arg = j;
      else if (c < second) second = c;
    }
    if (second - best > 1e-4) {
      EXPECT_EQ(idx[i], arg) << "row " << i;
      ++exact;
    }
  }
  EXPECT_GT(exact, n * 9 / 10);
}

TEST(CliSdotAssign, UserErrorsExitTwoWithOneLine) {
  TempDir dir;
  write_npy(dir.file("y.npy"), normal_points(10, 3, 1));
  write_npy(dir.file("x4.npy"), normal_points(5, 4, 2));
  write_npy(dir.file("x3.npy"), normal_points(5, 3, 2));
  std::vector<double> g9(9, 0.0), g10(10, 0.0);
  write_npy(dir.file("g9.npy"), g9, {9});
  write_npy(dir.file("g10.npy"), g10, {10});
  auto cmd = [&](const std::string& noise, const std::string& g) {
    return "sdot assign --data " + dir.file("y.npy") + " --potential " + dir.file(g) + " --noise " + dir.file(noise) +
           " --out " + dir.file("idx.npy");
  };
  auto expect_user_error = [](const test::CliResult& r, const std::string& fragment) {
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find(fragment), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  };
  expect_user_error(run_cli(cmd("x4.npy", "g10.npy")), "invalid --noise");
  expect_user_error(run_cli(cmd("x3.npy", "g9.npy")), "invalid --potential");
  expect_user_error(run_cli(cmd("missing.npy", "g10.npy")), "missing.npy");
  expect_user_error(run_cli("sdot assign --data " + dir.file("y.npy")), "--potential");
  EXPECT_EQ(run_cli(cmd("x3.npy", "g10.npy")).exit_code, 0);
}

TEST(CliSdotAssign, EngineChoosesThePathAndTheRecordNamesIt) {
  TempDir dir;
  const int64_t n = 200, m = 300, d = 40;
  write_npy(dir.file("y.npy"), normal_points(m, d, 1));
  write_npy(dir.file("x.npy"), normal_points(n, d, 2));
  std::vector<double> g(m);
  Rng(3).fill_normal(std::span<double>(g));
  write_npy(dir.file("g.npy"), g, {m});
  auto assign = [&](const std::string& engine, const std::string& out) {
    return run_cli("sdot assign --data " + dir.file("y.npy") + " --potential " + dir.file("g.npy") + " --noise " +
                   dir.file("x.npy") + " --out " + dir.file(out) + " --engine " + engine);
  };
  const auto f = assign("fp32", "f.npy");
  ASSERT_EQ(f.exit_code, 0) << f.out;
  EXPECT_EQ(nlohmann::json::parse(f.out)["engine"], "fp32");
  if (cpu_features().avx512_bf16) {
    const auto b = assign("avx512bf16", "b.npy");
    ASSERT_EQ(b.exit_code, 0) << b.out;
    EXPECT_EQ(nlohmann::json::parse(b.out)["engine"], "avx512bf16");
    const auto fi = read_int64_npy(dir.file("f.npy"), "f"), bi = read_int64_npy(dir.file("b.npy"), "b");
    int64_t same = 0;
    for (int64_t i = 0; i < n; ++i) same += fi[i] == bi[i];
    EXPECT_GE(same, n - 2) << "the paths differ only on float32 near-ties";
  } else {
    EXPECT_EQ(assign("avx512bf16", "b.npy").exit_code, 2);
  }
  // auto: the bf16 screen only when the CLI's OpenBLAS kernels lack FMA (its run record names them).
  const auto a = assign("auto", "a.npy");
  ASSERT_EQ(a.exit_code, 0) << a.out;
  const auto probe = run_cli("sdot fit --data " + dir.file("y.npy") + " --steps 2 --chi2-every 0 --quiet --out " +
                             dir.file("g1.npy") + " --record " + dir.file("r.json"));
  ASSERT_EQ(probe.exit_code, 0) << probe.out;
  std::ifstream rec(dir.file("r.json"));
  const std::string core = nlohmann::json::parse(rec)["blas_core"];
  const bool amx = engine_path_unsupported(EnginePath::Amx).empty();
  const bool amx_auto = amx && d >= kBf16MinDim && m * d > kAmxMinWork;  // 300 x 40: too small for it
  const bool bf16 = cpu_features().avx512_bf16 && d >= kBf16MinDim && !blas_kernels_have_fma(core);
  EXPECT_EQ(nlohmann::json::parse(a.out)["engine"], amx_auto ? "amx" : bf16 ? "avx512bf16" : "fp32") << core;
  EXPECT_EQ(core, blas_core_name());  // the same OpenBLAS and environment as this process
  // fit and check record the path of their eps = 0 searches.
  const std::string path = amx ? "amx" : cpu_features().avx512_bf16 ? "avx512bf16" : "fp32";
  auto last_line = [](const std::string& out) {
    const auto end = out.find_last_not_of('\n'), start = out.rfind('\n', end);
    return nlohmann::json::parse(out.substr(start == std::string::npos ? 0 : start + 1, end + 1));
  };
  const auto fit = run_cli("sdot fit --data " + dir.file("y.npy") + " --steps 20 --chi2-every 0 --quiet --out " +
                           dir.file("g2.npy") + " --engine " + path);
  ASSERT_EQ(fit.exit_code, 0) << fit.out;
  EXPECT_EQ(last_line(fit.out)["engine"], path) << fit.out;
  const auto check = run_cli("sdot check --data " + dir.file("y.npy") + " --potential " + dir.file("g2.npy") +
                             " --draws 2000 -q --engine " + path);
  ASSERT_EQ(check.exit_code, 0) << check.out;
  EXPECT_EQ(last_line(check.out)["engine"], path) << check.out;
  for (const char* bad : {"amx", "bf16"}) {
    if (bad == std::string("amx") && amx) continue;  // a path this CPU runs (above)
    const auto r = assign(bad, "z.npy");
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find(std::string("invalid --engine = '") + bad + "'"), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
}

// Runs the CLI with stdout and stderr each to a file (not a terminal); returns the exit code.
int run_cli_to_files(const std::string& env, const std::string& args, const TempDir& dir, std::string& out,
                     std::string& err) {
  const std::string cmd = env + " " + OTGEN_CLI_PATH + " " + args + " >" + dir.file("stdout") + " 2>" +
                          dir.file("stderr");
  const int status = std::system(cmd.c_str());
  auto slurp = [](const std::string& path) {
    std::ifstream f(path);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  out = slurp(dir.file("stdout"));
  err = slurp(dir.file("stderr"));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> got;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) got.push_back(line);
  return got;
}

// stderr not a terminal: one line per OTGEN_PROGRESS_INTERVAL (0: every step) and one at the end, with
// step/total, chi2 once measured, rate and ETA; --quiet prints none; a run shorter than the interval none.
TEST(CliProgress, PipedRunLogsPeriodicLinesWithStepChi2RateAndEta) {
  TempDir dir;
  write_npy(dir.file("y.npy"), normal_points(40, 2, 5));
  const std::string fit = "sdot fit --data " + dir.file("y.npy") + " --steps 30 --batch 64 --lr 1 --chi2-every 10" +
                          " --chi2-threshold 0 --threads 1 --out " + dir.file("g.npy");
  std::string out, err;
  ASSERT_EQ(run_cli_to_files("OTGEN_PROGRESS_INTERVAL=0", fit, dir, out, err), 0) << err;
  EXPECT_EQ(nlohmann::json::parse(out)["steps"], 30);  // stdout stays the JSON summary alone
  const auto lines = lines_starting(err, "sdot fit: step ");
  ASSERT_EQ(lines.size(), 31u) << err;  // every step, then the last line
  for (size_t k = 0; k < lines.size(); ++k) {
    const int64_t step = std::min<int64_t>(static_cast<int64_t>(k) + 1, 30);
    EXPECT_EQ(lines[k].rfind("sdot fit: step " + std::to_string(step) + "/30 (", 0), 0u) << lines[k];
    EXPECT_NE(lines[k].find(" steps/s, eta "), std::string::npos) << lines[k];
    EXPECT_NE(lines[k].find(", elapsed "), std::string::npos) << lines[k];
    EXPECT_EQ(lines[k].find(", chi2 ") != std::string::npos, step >= 10) << lines[k];
  }
  ASSERT_EQ(run_cli_to_files("OTGEN_PROGRESS_INTERVAL=0", fit + " --quiet", dir, out, err), 0) << err;
  EXPECT_EQ(err, "");
  ASSERT_EQ(run_cli_to_files("OTGEN_PROGRESS_INTERVAL=100000", fit, dir, out, err), 0) << err;
  EXPECT_EQ(err, "");
}

}  // namespace
}  // namespace otgen
