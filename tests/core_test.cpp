#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <set>

#include "otgen/core/context.h"
#include "otgen/core/error.h"
#include "otgen/core/npy.h"
#include "otgen/core/progress.h"
#include "otgen/core/record.h"
#include "otgen/core/rng.h"
#include "test_util.h"

namespace otgen {
namespace {

TEST(Error, MessageNamesArgumentValueAndExpectation) {
  try {
    require(false, "batch_size", 0, "a positive integer");
    FAIL() << "require(false) did not throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "invalid batch_size = 0: expected a positive integer");
  }
}

TEST(Context, NegativeThreadsRejectedAndZeroMeansAllCores) {
  EXPECT_THROW((Context{-1}.validate()), Error);
  EXPECT_GE(Context{}.resolved_threads(), 1);
  EXPECT_EQ(Context{3}.resolved_threads(), 3);
}

TEST(Philox, MatchesRandom123KnownAnswer) {
  // Known-answer vector from Random123 (kat_vectors: philox4x32_10, counter 0, key 0).
  auto r = philox4x32(0, 0, 0);
  EXPECT_EQ(r[0], 0x6627e8d5u);
  EXPECT_EQ(r[1], 0xe169c58du);
  EXPECT_EQ(r[2], 0xbc57ac4cu);
  EXPECT_EQ(r[3], 0x9b00dbd8u);
  r = philox4x32(~0ULL, ~0ULL, ~0ULL);
  EXPECT_EQ(r[0], 0x408f276du);
  EXPECT_EQ(r[1], 0x41c83b0eu);
  EXPECT_EQ(r[2], 0xa20bc7c6u);
  EXPECT_EQ(r[3], 0x6d5451fdu);
}

TEST(Rng, SameSeedAndStreamGiveSameDrawsOthersDiffer) {
  Rng a(7, 1), b(7, 1), c(7, 2), d(8, 1);
  for (int k = 0; k < 100; ++k) {
    const uint64_t va = a.next_u64();
    EXPECT_EQ(va, b.next_u64());
    EXPECT_NE(va, c.next_u64());
    EXPECT_NE(va, d.next_u64());
  }
}

TEST(Rng, NormalMomentsMatchStandardNormal) {
  Rng r(123);
  const int n = 200000;
  double s = 0, s2 = 0, s4 = 0;
  for (int k = 0; k < n; ++k) {
    const double z = r.normal();
    s += z, s2 += z * z, s4 += z * z * z * z;
  }
  // Standard errors: mean 1/sqrt(n) = 0.0022; variance sqrt(2/n) = 0.0032; 4th moment sqrt(96/n) = 0.022.
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.015);
  EXPECT_NEAR(s4 / n, 3.0, 0.1);
}

TEST(Rng, GumbelMeanIsEulerGammaAndBelowIsUniform) {
  Rng r(5);
  const int n = 200000;
  double s = 0;
  for (int k = 0; k < n; ++k) s += r.gumbel();
  EXPECT_NEAR(s / n, 0.5772156649, 0.01);  // sd pi/sqrt(6) / sqrt(n) = 0.0029
  std::vector<int> counts(7);
  for (int k = 0; k < 70000; ++k) counts[r.below(7)]++;
  for (int c : counts) EXPECT_NEAR(c, 10000, 400);  // sd ~93
}

TEST(Rng, UniformsStayInsideTheOpenIntervalAtTheExtremes) {
  EXPECT_LT(u01_open53(0xFFFFFFFFu, 0xFFFFFFFFu), 1.0);
  EXPECT_GT(u01_open53(0u, 0u), 0.0);
  EXPECT_LT(u01_open(0xFFFFFFFFu), 1.0);
  EXPECT_GT(u01_open(0u), 0.0);
  const double top = -std::log(-std::log(u01_open53(0xFFFFFFFFu, 0xFFFFFFFFu)));
  EXPECT_TRUE(std::isfinite(top));
  EXPECT_LE(top, 53 * std::log(2.0) + 1e-9);
}

TEST(Rng, GumbelAtIsAPureFunction) {
  EXPECT_EQ(gumbel_at(3, 10, 20), gumbel_at(3, 10, 20));
  EXPECT_NE(gumbel_at(3, 10, 20), gumbel_at(3, 10, 21));
  EXPECT_NE(gumbel_at(3, 10, 20), gumbel_at(4, 10, 20));
}

class NpyTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) { return (dir_.path / name).string(); }
  test::TempDir dir_;
};

TEST_F(NpyTest, RoundTripsFloat32Float64Int64) {
  std::vector<float> f{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1e-3f};
  write_npy(path("f.npy"), f, {2, 3});
  Points p = read_points_npy(path("f.npy"), "--data");
  EXPECT_EQ(p.n, 2);
  EXPECT_EQ(p.d, 3);
  EXPECT_EQ(p.data, f);

  std::vector<double> g{1.0, 2.5, -3.0};
  write_npy(path("g.npy"), g, {3});
  EXPECT_EQ(read_vector_npy(path("g.npy"), "--potential"), g);

  std::vector<int64_t> idx{0, 5, -2, 1LL << 40};
  write_npy(path("i.npy"), idx, {4});
  EXPECT_EQ(read_int64_npy(path("i.npy"), "--labels"), idx);
  EXPECT_FALSE(std::filesystem::exists(path("i.npy") + ".tmp"));
}

TEST_F(NpyTest, RowRangesReadOnlyTheirRows) {
  // 7 x 3 float32 and float64 points, a float64 vector and an int64 vector: every range [b, e) equals
  // the same rows of the whole array.
  std::vector<float> f(21);
  std::vector<double> f64(21), v(7);
  std::vector<int64_t> l(7);
  for (int k = 0; k < 21; ++k) f[k] = 0.5f * static_cast<float>(k) - 3, f64[k] = f[k];
  for (int k = 0; k < 7; ++k) v[k] = 1.0 / (k + 1), l[k] = 10 * k;
  write_npy(path("f.npy"), f, {7, 3});
  write_npy(path("d.npy"), f64, {7, 3});
  write_npy(path("v.npy"), v, {7});
  write_npy(path("l.npy"), l, {7});
  EXPECT_EQ(npy_rows(path("f.npy")), 7);
  EXPECT_EQ(npy_rows(path("v.npy")), 7);
  for (int64_t b = 0; b <= 7; ++b)
    for (int64_t e = b; e <= 7; ++e) {
      const std::vector<float> want(f.begin() + 3 * b, f.begin() + 3 * e);
      for (const char* name : {"f.npy", "d.npy"}) {
        const Points p = read_points_npy_rows(path(name), "--data", b, e);
        EXPECT_EQ(p.n, e - b);
        EXPECT_EQ(p.d, 3);
        EXPECT_EQ(p.data, want) << name << " rows " << b << ".." << e;
      }
      EXPECT_EQ(read_vector_npy_rows(path("v.npy"), "--weights", b, e), std::vector<double>(v.begin() + b, v.begin() + e));
      EXPECT_EQ(read_int64_npy_rows(path("l.npy"), "--labels", b, e), std::vector<int64_t>(l.begin() + b, l.begin() + e));
    }
  EXPECT_EQ(read_points_npy_rows(path("f.npy"), "--data", 5, -1).n, 2);  // -1: to the end
  try {
    read_points_npy_rows(path("f.npy"), "--data", 2, 8);
    FAIL() << "a range past the end was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--data"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("7 rows"), std::string::npos) << e.what();
  }
}

TEST_F(NpyTest, Float64PointsAreConvertedAndOneDIsAColumn) {
  std::vector<double> g{1.0, 2.0, 3.0};
  write_npy(path("g.npy"), g, {3});
  Points p = read_points_npy(path("g.npy"), "--data");
  EXPECT_EQ(p.n, 3);
  EXPECT_EQ(p.d, 1);
  EXPECT_EQ(p.data, (std::vector<float>{1, 2, 3}));
}

TEST_F(NpyTest, RejectsTruncatedFile) {
  std::vector<float> f(100, 1.0f);
  write_npy(path("f.npy"), f, {10, 10});
  std::filesystem::resize_file(path("f.npy"), std::filesystem::file_size(path("f.npy")) - 4);
  test::expect_error_contains([&] { read_points_npy(path("f.npy"), "--data"); }, "truncated");
}

// The input policy (otgen/core/npy.h): every real dtype in either byte order is converted. The bytes below
// are written by hand (big-endian int32, float16 with a subnormal, big-endian float64, uint8, uint64).
TEST_F(NpyTest, ConvertsEveryRealDtypeInEitherByteOrder) {
  auto write_body = [&](const std::string& name, const std::string& descr, const std::string& shape,
                        const std::string& body) {
    std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::ofstream f(path(name), std::ios::binary);
    f << std::string("\x93NUMPY\x01\x00", 8) << static_cast<char>(h.size() & 0xff) << static_cast<char>(h.size() >> 8) << h << body;
  };
  // 1, -2, 70000 as big-endian int32: a (3, 1) column read as points and as labels (a 1-D file).
  const std::string be_i4("\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x01\x11\x70", 12);
  write_body("be_i4.npy", ">i4", "(3, 1)", be_i4);
  EXPECT_EQ(read_points_npy(path("be_i4.npy"), "--data").data, (std::vector<float>{1.0f, -2.0f, 70000.0f}));
  write_body("be_i4_1d.npy", ">i4", "(3,)", be_i4);
  EXPECT_EQ(read_int64_npy(path("be_i4_1d.npy"), "--labels"), (std::vector<int64_t>{1, -2, 70000}));
  // float16 1.0 (0x3c00), -2.5 (0xc100), 65504 (0x7bff), 2^-24 (0x0001, the smallest subnormal).
  write_body("f2.npy", "<f2", "(2, 2)", std::string("\x00\x3c\x00\xc1\xff\x7b\x01\x00", 8));
  EXPECT_EQ(read_points_npy(path("f2.npy"), "--data").data, (std::vector<float>{1.0f, -2.5f, 65504.0f, 5.9604644775390625e-8f}));
  // big-endian float64 0.1 and -3.
  write_body("be_f8.npy", ">f8", "(2,)", std::string("\x3f\xb9\x99\x99\x99\x99\x99\x9a\xc0\x08\x00\x00\x00\x00\x00\x00", 16));
  EXPECT_EQ(read_vector_npy(path("be_f8.npy"), "--weights"), (std::vector<double>{0.1, -3.0}));
  write_body("u1.npy", "|u1", "(1, 3)", std::string("\x00\x80\xff", 3));
  EXPECT_EQ(read_points_npy(path("u1.npy"), "--data").data, (std::vector<float>{0.0f, 128.0f, 255.0f}));
  write_body("u8.npy", "<u8", "(1,)", std::string("\xff\xff\xff\xff\xff\xff\xff\xff", 8));
  test::expect_error_contains([&] { read_int64_npy(path("u8.npy"), "--labels"); }, "above 2^63 - 1");
  write_body("f4.npy", "<f4", "(1,)", std::string("\x00\x00\x80\x3f", 4));
  test::expect_error_contains([&] { read_int64_npy(path("f4.npy"), "--labels"); }, "an integer array");
}

TEST_F(NpyTest, RejectsFortranOrderWrongDtypeAndBadMagic) {
  auto write_raw = [&](const std::string& name, const std::string& dict) {
    std::string h = dict;
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::ofstream f(path(name), std::ios::binary);
    f << std::string("\x93NUMPY\x01\x00", 8) << static_cast<char>(h.size() & 0xff) << static_cast<char>(h.size() >> 8) << h;
    f << std::string(64, '\0');
  };
  write_raw("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 4), }");
  test::expect_error_contains([&] { read_points_npy(path("fortran.npy"), "--data"); }, "Fortran");
  write_raw("bool.npy", "{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }");
  test::expect_error_contains([&] { read_npy(path("bool.npy")); }, "'|b1' is not supported");
  write_raw("complex.npy", "{'descr': '<c8', 'fortran_order': False, 'shape': (4,), }");
  test::expect_error_contains([&] { read_npy(path("complex.npy")); }, "not supported");
  write_raw("f1.npy", "{'descr': '<f1', 'fortran_order': False, 'shape': (4,), }");
  test::expect_error_contains([&] { read_npy(path("f1.npy")); }, "not supported");
  std::ofstream(path("text.npy")) << "hello, not numpy";
  test::expect_error_contains([&] { read_npy(path("text.npy")); }, "magic");
  test::expect_error_contains([&] { read_npy(path("missing.npy")); }, "cannot open");
}

TEST_F(NpyTest, RejectsNaNInPointsAndWrongDtypeForLabels) {
  std::vector<float> f{1.0f, std::numeric_limits<float>::quiet_NaN(), 3.0f, 4.0f};
  write_npy(path("nan.npy"), f, {2, 2});
  test::expect_error_contains([&] { read_points_npy(path("nan.npy"), "--data"); }, "row 0, column 1");
  test::expect_error_contains([&] { read_int64_npy(path("nan.npy"), "--labels"); }, "1-D");
  std::vector<float> g{1.0f, 2.0f};
  write_npy(path("f1.npy"), g, {2});
  test::expect_error_contains([&] { read_int64_npy(path("f1.npy"), "--labels"); }, "int64");
  std::vector<float> h(8, 0.0f);
  write_npy(path("3d.npy"), h, {2, 2, 2});
  test::expect_error_contains([&] { read_points_npy(path("3d.npy"), "--data"); }, "2-D");
}

TEST_F(NpyTest, ReadsFilesWrittenByNumpyHeaderLayout) {
  // A header exactly as numpy 1.24 writes np.arange(6, dtype=np.float32).reshape(2, 3).
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  h.append(128 - 10 - h.size() - 1, ' ');
  h += '\n';
  {
    std::ofstream f(path("np.npy"), std::ios::binary);
    f << std::string("\x93NUMPY\x01\x00", 8) << static_cast<char>(h.size()) << '\0' << h;
    for (int k = 0; k < 6; ++k) {
      float v = static_cast<float>(k);
      f.write(reinterpret_cast<const char*>(&v), 4);
    }
  }
  Points p = read_points_npy(path("np.npy"), "--data");
  EXPECT_EQ(p.data, (std::vector<float>{0, 1, 2, 3, 4, 5}));
}

TEST(Progress, LineShowsCountRateAndStatus) {
  Context quiet;
  quiet.quiet = true;
  Progress p("fit", 100, quiet);
  EXPECT_FALSE(p.enabled());
  const std::string line = p.line(50, "chi2 0.1");
  EXPECT_NE(line.find("50/100"), std::string::npos) << line;
  EXPECT_NE(line.find("50.0%"), std::string::npos) << line;
  EXPECT_NE(line.find("chi2 0.1"), std::string::npos) << line;
}

TEST(Progress, LogLineShowsStepMetricsRateEtaAndStatus) {
  Context quiet;
  quiet.quiet = true;
  Progress p("sdot fit", 200, quiet);
  EXPECT_EQ(p.mode(), ProgressMode::Off);
  p.set_metric("chi2", 0.5);
  p.set_metric("chi2", 0.25);  // replaces
  const std::string line = p.log_line(50, "eps 0.1");
  EXPECT_EQ(line.rfind("sdot fit: step 50/200 (25.0%), chi2 0.25, ", 0), 0u) << line;
  EXPECT_NE(line.find(" steps/s, eta "), std::string::npos) << line;
  EXPECT_NE(line.find(", elapsed "), std::string::npos) << line;
  EXPECT_EQ(line.substr(line.size() - 9), ", eps 0.1") << line;
  EXPECT_NE(p.line(50, "").find("chi2 0.25"), std::string::npos);
}

TEST(Progress, JsonLineCarriesTheEvent) {
  Context quiet;
  quiet.quiet = true;
  Progress p("train", 10, quiet);
  p.set_metric("loss", 1.5);
  const std::string line = p.json_line(4, true);
  EXPECT_EQ(line.rfind("{\"progress\":\"train\",\"step\":4,", 0), 0u) << line;  // wrappers key on this
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["progress"], "train");
  EXPECT_EQ(j["step"], 4);
  EXPECT_EQ(j["total"], 10);
  EXPECT_EQ(j["metrics"]["loss"], 1.5);
  EXPECT_EQ(j["final"], true);
  EXPECT_TRUE(j.contains("rate") && j.contains("eta") && j.contains("seconds"));
}

// Sets an environment variable for one scope.
struct ScopedEnv {
  std::string name;
  ScopedEnv(const char* n, const char* v) : name(n) { ::setenv(n, v, 1); }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

TEST(Progress, CallbackGetsEveryUpdateAtIntervalZeroAndTheEndEvenWhenQuiet) {
  ScopedEnv env("OTGEN_PROGRESS_INTERVAL", "0");
  std::vector<ProgressEvent> seen;
  std::vector<double> losses;
  Context ctx;
  ctx.quiet = true;
  ctx.on_progress = [&](const ProgressEvent& e) {
    seen.push_back(e);
    losses.push_back(e.metrics.empty() ? -1 : e.metrics[0].second);
  };
  {
    Progress p("fit", 5, ctx);
    EXPECT_TRUE(p.enabled());
    for (int k = 1; k <= 5; ++k) {
      p.set_metric("loss", 1.0 / k);
      p.update(k);
    }
    p.finish();
    p.finish();  // once
  }
  ASSERT_EQ(seen.size(), 6u);
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(seen[k].done, k + 1);
    EXPECT_EQ(seen[k].total, 5);
    EXPECT_FALSE(seen[k].final);
    EXPECT_DOUBLE_EQ(losses[k], 1.0 / (k + 1));
  }
  EXPECT_TRUE(seen[5].final);
  EXPECT_EQ(seen[5].done, 5);
}

TEST(Progress, ModeFollowsQuietAndTheEnvironment) {
  Context loud, quiet;
  quiet.quiet = true;
  {
    ScopedEnv env("OTGEN_PROGRESS", "json");
    EXPECT_EQ(Progress("a", 1, loud).mode(), ProgressMode::Json);
    EXPECT_EQ(Progress("a", 1, quiet).mode(), ProgressMode::Off);
    EXPECT_FALSE(Progress("a", 1, quiet).enabled());
  }
  {
    ScopedEnv env("OTGEN_PROGRESS", "log");
    EXPECT_EQ(Progress("a", 1, loud).mode(), ProgressMode::Log);
  }
  {
    ScopedEnv env("OTGEN_PROGRESS_INTERVAL", "2.5");
    EXPECT_DOUBLE_EQ(Progress::log_interval(), 2.5);
  }
  {
    ScopedEnv env("OTGEN_PROGRESS_INTERVAL", "soon");
    EXPECT_DOUBLE_EQ(Progress::log_interval(), 5.0);
  }
}

TEST(Record, CarriesSeedThreadsAndVersion) {
  Context ctx;
  ctx.seed = 42;
  ctx.threads = 2;
  auto doc = run_record("sdot fit", ctx);
  EXPECT_EQ(doc["seed"], 42);
  EXPECT_EQ(doc["threads"], 2);
  EXPECT_EQ(doc["command"], "sdot fit");
  EXPECT_FALSE(doc["otgen_version"].get<std::string>().empty());
}

}  // namespace
}  // namespace otgen
