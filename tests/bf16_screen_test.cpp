// The engine's argmax paths (otgen/core/cpu_features.h, ScoreOptions::path): the bf16 screen, on each of its
// kernels (avx512bf16: vdpbf16ps; amx: AMX-BF16 tiles), against the naive double-precision argmax, the fp32
// engine, the int8 screen and each other; the probe and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "otgen/kernels/bf16_columns.h"
#include "otgen/core/blas_threads.h"
#include "otgen/core/cpu_features.h"
#include "otgen/kernels/lattice.h"
#include "otgen/kernels/scores.h"
#include "test_util.h"

namespace otgen {
namespace {

using test::expect_error_contains;
using test::gaussian_points;
using test::naive_argmax;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

ScoreOptions forced(EnginePath p) {
  ScoreOptions o;
  o.path = p;
  return o;
}

struct Result {
  std::vector<int64_t> index;
  std::vector<float> value;
};

Result run(PointsView x, PointsView y, std::span<const float> h, EnginePath path, int threads = 2) {
  Result r{std::vector<int64_t>(static_cast<size_t>(x.n)), std::vector<float>(static_cast<size_t>(x.n))};
  Context ctx;
  ctx.threads = threads;
  row_argmax(ScoreProblem{x, y, h}, r.index, r.value, ctx, forced(path));
  return r;
}

// A bf16 path gives exactly the naive double argmax: same index (lowest on ties), value rounded.
void expect_exact(EnginePath path, PointsView x, PointsView y, std::span<const float> h, const std::string& what,
                  int threads = 2) {
  const Result got = run(x, y, h, path, threads);
  const test::Naive ref = naive_argmax(x, y, h);
  for (int64_t i = 0; i < x.n; ++i) {
    ASSERT_EQ(got.index[i], ref.index[i]) << what << " row " << i;
    ASSERT_EQ(got.value[i], static_cast<float>(ref.value[i])) << what << " row " << i;
  }
}

std::vector<float> random_h(int64_t m, uint64_t seed, float scale, bool mask) {
  std::vector<float> h(static_cast<size_t>(m));
  Rng r(seed);
  for (auto& v : h) v = static_cast<float>(scale * r.normal());
  if (mask)
    for (int64_t j = 1; j < m; j += 4) h[j] = kNegInf;
  return h;
}

// Every test of the screen runs on each kernel the CPU has (skipped with the reason otherwise).
class Bf16Screen : public ::testing::TestWithParam<EnginePath> {
 protected:
  void SetUp() override {
    if (const std::string why = engine_path_unsupported(GetParam()); !why.empty())
      GTEST_SKIP() << engine_path_name(GetParam()) << ": " << why << " (" << cpu_features().summary() << ")";
  }
  EnginePath path() const { return GetParam(); }
};

TEST_P(Bf16Screen, MatchesTheNaiveDoubleArgmaxOnAwkwardSizes) {
  // d: 1..8, odd (a padded bf16 pair), around the 32-float conversion chunk (and AMX's 32-coordinate
  // tile rows), 785; n, m around the 12- and 32-row strips, 32-column panels, 384-row blocks and
  // 16-panel groups.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},   {2, 7},   {11, 31}, {12, 32}, {13, 33},
                                                           {25, 65}, {31, 3},  {33, 97}, {64, 40}, {385, 9},
                                                           {5, 513}, {37, 1025}};
  for (int64_t d : {1, 2, 3, 4, 5, 6, 7, 8, 17, 31, 32, 33, 63, 64, 65, 785})
    for (auto [n, m] : shapes) {
      if (d == 785 && n * m > 20000) continue;
      const Points x = gaussian_points(n, d, 10 + d, 1.0f / std::sqrt(static_cast<float>(d)));
      const Points y = gaussian_points(m, d, 20 + m, 1.0f, 0.3f);
      for (bool mask : {false, true}) {
        const auto h = random_h(m, 30 + n, 0.5f, mask && m > 1);
        expect_exact(path(), x, y, h, "d=" + std::to_string(d) + " n=" + std::to_string(n) + " m=" + std::to_string(m));
      }
      expect_exact(path(), x, y, {}, "no h, d=" + std::to_string(d));
    }
}

TEST_P(Bf16Screen, AgreesWithTheFp32EngineUpToItsOwnRounding) {
  // Where fp32 picks another column, that column's exact score is within float32's error of the best:
  // |fl(S) - S| <= gamma(d + 1) (sum_k |x_k y_k| + |h|) for each of the two.
  int64_t rows = 0, differ = 0;
  for (int64_t d : {17, 64, 785}) {
    const int64_t n = 200, m = 700;
    const Points x = gaussian_points(n, d, 1 + d, 1.0f);
    const Points y = gaussian_points(m, d, 2 + d, 0.5f, 0.1f);
    const auto h = random_h(m, 3, 2.0f, true);
    const Result b = run(x, y, h, path()), f = run(x, y, h, EnginePath::Fp32);
    const double g = (d + 1) * 0x1p-24 / (1 - (d + 1) * 0x1p-24);
    for (int64_t i = 0; i < n; ++i, ++rows) {
      if (b.index[i] == f.index[i]) continue;
      ++differ;
      auto exact = [&](int64_t j, double& mag) {
        double s = h[j];
        mag = std::abs(h[j]);
        for (int64_t k = 0; k < d; ++k) s += static_cast<double>(x.row(i)[k]) * y.row(j)[k], mag += std::abs(x.row(i)[k] * y.row(j)[k]);
        return s;
      };
      double mb = 0, mf = 0;
      const double sb = exact(b.index[i], mb), sf = exact(f.index[i], mf);
      EXPECT_GE(sb, sf) << "the bf16 path's pick is the exact best";
      EXPECT_LE(sb - sf, 2 * g * std::max(mb, mf)) << "d=" << d << " row " << i;
    }
  }
  EXPECT_LT(differ * 50, rows) << "the two paths should differ only on rare near-ties";
}

TEST_P(Bf16Screen, NearTiesAndExactTiesGoToTheLowestColumn) {
  const int64_t d = 96, m = 300, n = 40;
  // Integer-valued y / 64 and x: every double sum is exact, so permuted copies of a column tie exactly.
  Points x(n, d), y(m, d);
  Rng r(5);
  for (auto& v : x.data) v = static_cast<float>(std::round(4 * r.normal()));
  for (auto& v : y.data) v = static_cast<float>(std::round(64 * r.normal()) / 64);
  std::vector<float> h(static_cast<size_t>(m), 0.0f);
  for (int64_t c : {40, 77, 150, 299}) std::copy(y.row(7), y.row(7) + d, y.row(c));  // duplicates of column 7
  for (int64_t i = 0; i < n; ++i) std::fill(x.row(i) + 64, x.row(i) + d, 1.0f);      // permuted coordinates tie
  std::copy(y.row(20), y.row(20) + d, y.row(200));
  std::reverse(y.row(200) + 64, y.row(200) + d);
  // Columns one float ulp apart from column 9 (the exact scores differ below float32's resolution).
  for (int64_t c = 250; c < 260; ++c) {
    std::copy(y.row(9), y.row(9) + d, y.row(c));
    y.row(c)[c - 250] = std::nextafter(y.row(c)[c - 250], (c % 2) ? 1e9f : -1e9f);
  }
  // Give the tied groups the lead in turns through h.
  for (int64_t i = 0; i < n; ++i) {
    Points xi(1, d);
    std::copy(x.row(i), x.row(i) + d, xi.row(0));
    std::vector<float> hi = h;
    const int64_t lead = std::vector<int64_t>{7, 20, 9}[i % 3];
    hi[lead] = hi[200] = hi[40] = hi[77] = hi[150] = hi[299] = 1e4f;
    for (int64_t c = 250; c < 260; ++c) hi[c] = hi[9] = (i % 3 == 2) ? 1e4f : 0.0f;
    expect_exact(path(), xi, y, hi, "tie row " + std::to_string(i));
  }
  const Result got = run(x, y, h, path());
  for (int64_t i = 0; i < n; ++i) EXPECT_NE(got.index[i], 40) << "a duplicate never beats column 7";
}

TEST_P(Bf16Screen, TheBoundHoldsForLargeAndTinyNorms) {
  const int64_t n = 30, m = 200;
  for (int64_t d : {8, 64, 785})
    // 1e15: |x||y| ~ 1e32, screened; 3e18: within 2^120 of float32's overflow, re-scored in full;
    // 1e-21: products below 2^-126 are flushed to zero by vdpbf16ps (the bound's absolute term).
    for (float scale : {1e15f, 3e18f, 1e-21f}) {
      const Points x = gaussian_points(n, d, 7, scale), y = gaussian_points(m, d, 8, scale, scale);
      std::vector<float> h = random_h(m, 9, 0.1f * scale * scale * static_cast<float>(d), false);
      if (!std::isfinite(h[0])) h.assign(static_cast<size_t>(m), 0.0f);
      expect_exact(path(), x, y, h, "scale " + std::to_string(scale) + " d=" + std::to_string(d));
    }
}

TEST_P(Bf16Screen, ResultsAreIdenticalAcrossThreadCounts) {
  const int64_t n = 500, m = 3000, d = 64;
  const Points x = gaussian_points(n, d, 11, 0.2f), y = gaussian_points(m, d, 12);
  const auto h = random_h(m, 13, 1.0f, true);
  const Result one = run(x, y, h, path(), 1);
  for (int threads : {2, 3}) {
    const Result t = run(x, y, h, path(), threads);
    EXPECT_EQ(t.index, one.index) << threads << " threads";
    EXPECT_EQ(t.value, one.value) << threads << " threads";
  }
  expect_exact(path(), x, y, h, "n=500 m=3000", 3);
}

TEST_P(Bf16Screen, MatchesTheInt8ScreenOnLatticeData) {
  if (!LatticeColumns::cpu_supported()) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI";
  const int64_t n = 100, m = 900, d = 784;
  Points y(m, d);
  Rng r(3);
  for (auto& v : y.data) v = static_cast<float>(std::clamp(std::round(128 + 60 * r.normal()), 0.0, 255.0) / 127.5 - 1);
  const Points x = gaussian_points(n, d, 4);
  const auto h = random_h(m, 5, 30.0f, true);
  const Result b = run(x, y, h, path()), v = run(x, y, h, EnginePath::Vnni);
  EXPECT_EQ(b.index, v.index);
  EXPECT_EQ(b.value, v.value);
}

// The k best of h_j + <x_i, y_j> in double (ties: lowest j), then -inf entries for the lowest remaining
// columns when fewer than k are unmasked (how the fp32 engine lists masked columns).
void expect_topk_exact(EnginePath path, PointsView x, PointsView y, std::span<const float> h, int64_t k,
                       const std::string& what) {
  std::vector<int64_t> idx(static_cast<size_t>(x.n * k));
  std::vector<float> val(static_cast<size_t>(x.n * k));
  Context ctx;
  ctx.threads = 2;
  row_topk(ScoreProblem{x, y, h}, k, idx, val, ctx, forced(path));
  for (int64_t i = 0; i < x.n; ++i) {
    std::vector<std::pair<double, int64_t>> ref;
    for (int64_t j = 0; j < y.n; ++j) {
      if (!h.empty() && std::isinf(h[j])) continue;
      double s = h.empty() ? 0.0 : h[j];
      for (int64_t c = 0; c < x.d; ++c) s += static_cast<double>(x.row(i)[c]) * y.row(j)[c];
      ref.emplace_back(-s, j);  // ascending (-s, j): best first, lowest j on ties
    }
    std::sort(ref.begin(), ref.end());
    for (int64_t j = 0; static_cast<int64_t>(ref.size()) < k; ++j)
      if (std::isinf(h[j])) ref.emplace_back(std::numeric_limits<double>::infinity(), j);
    for (int64_t q = 0; q < k; ++q) {
      ASSERT_EQ(idx[i * k + q], ref[q].second) << what << " row " << i << " rank " << q;
      ASSERT_EQ(val[i * k + q], static_cast<float>(-ref[q].first)) << what << " row " << i << " rank " << q;
    }
  }
}

TEST_P(Bf16Screen, TopkMatchesTheNaiveDoubleTopkOnAwkwardSizes) {
  for (int64_t d : {1, 3, 8, 17, 33, 785})
    for (auto [n, m] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {13, 33}, {25, 65}, {7, 1025}}) {
      const Points x = gaussian_points(n, d, 40 + d, 1.0f / std::sqrt(static_cast<float>(d)));
      const Points y = gaussian_points(m, d, 50 + m, 1.0f, 0.3f);
      for (int64_t k : {int64_t{1}, int64_t{3}, int64_t{10}, m}) {
        if (k > m) continue;
        for (bool mask : {false, true}) {  // masked: k may exceed the unmasked columns
          const auto h = random_h(m, 60 + n, 0.5f, mask && m > 1);
          expect_topk_exact(path(), x, y, h, k, "d=" + std::to_string(d) + " m=" + std::to_string(m) + " k=" + std::to_string(k));
        }
      }
    }
}

TEST_P(Bf16Screen, TopkTiesAcrossDuplicatedColumnsGoToTheLowestIndex) {
  const int64_t d = 64, m = 400, n = 20;
  Points x = gaussian_points(n, d, 1), y = gaussian_points(m, d, 2);
  for (int64_t c : {5, 90, 130, 399}) std::copy(y.row(3), y.row(3) + d, y.row(c));
  std::vector<float> h(static_cast<size_t>(m), 0.0f);
  for (int64_t c : {3, 5, 90, 130, 399}) h[c] = 1e3f;
  expect_topk_exact(path(), x, y, h, 4, "duplicates");
  expect_topk_exact(path(), x, y, h, 7, "duplicates and the next best");
}

TEST_P(Bf16Screen, PrebuiltColumnsGiveTheSameResultsAndCheckTheirY) {
  const int64_t n = 60, m = 500, d = 100;
  const Points x = gaussian_points(n, d, 1), y = gaussian_points(m, d, 2), other = gaussian_points(m, d, 3);
  const auto cols = Bf16Columns::build(y, Context{}, path());
  ASSERT_NE(cols, nullptr);
  EXPECT_EQ(cols->path(), path());
  for (uint64_t seed : {4, 5}) {  // one packing, several potentials
    const auto h = random_h(m, seed, 3.0f, seed == 5);
    const Result once = run(x, y, h, path());
    std::vector<int64_t> idx(n), ti(n * 5), tref(n * 5);
    std::vector<float> val(n), tv(n * 5), tvref(n * 5);
    row_argmax(ScoreProblem{x, y, h}, *cols, idx, val, Context{});
    EXPECT_EQ(idx, once.index);
    EXPECT_EQ(val, once.value);
    row_topk(ScoreProblem{x, y, h}, *cols, 5, ti, tv, Context{});
    row_topk(ScoreProblem{x, y, h}, 5, tref, tvref, Context{}, forced(path()));
    EXPECT_EQ(ti, tref);
    EXPECT_EQ(tv, tvref);
  }
  std::vector<int64_t> idx(n);
  std::vector<float> val(n);
  expect_error_contains([&] { row_argmax(ScoreProblem{x, other, {}}, *cols, idx, val, Context{}); },
                        "invalid columns");
}

INSTANTIATE_TEST_SUITE_P(Kernels, Bf16Screen, ::testing::Values(EnginePath::Avx512Bf16, EnginePath::Amx),
                         [](const auto& info) { return std::string(engine_path_name(info.param)); });

TEST(EnginePaths, AutoPicksAmxOrTheScreenWhenTheSgemmLacksFmaForImageSizedRows) {
  const EnginePath want = engine_path_unsupported(EnginePath::Amx).empty() ? EnginePath::Amx
                          : cpu_features().avx512_bf16 && !blas_has_fma_kernels() ? EnginePath::Avx512Bf16
                                                                                   : EnginePath::Fp32;
  EXPECT_EQ(argmax_path(60000, 784), want) << blas_core_name() << "; " << cpu_features().summary();
  EXPECT_EQ(argmax_path(kAmxMinWork, kBf16MinDim), want);
  EXPECT_EQ(argmax_path(60000, kBf16MinDim - 1), EnginePath::Fp32);
  EXPECT_EQ(argmax_path(60000, 784, forced(EnginePath::Fp32)), EnginePath::Fp32);
  // AMX only above kAmxMinWork columns x dimensions (the digits, 1797 x 64, stay below it).
  const EnginePath small = want == EnginePath::Amx ? (cpu_features().avx512_bf16 && !blas_has_fma_kernels()
                                                          ? EnginePath::Avx512Bf16 : EnginePath::Fp32) : want;
  EXPECT_EQ(argmax_path(1797, 64), small);
  EXPECT_EQ(argmax_path(kAmxMinWork / kBf16MinDim, kBf16MinDim), small);
  EXPECT_EQ(argmax_path(kAmxMinWork / kBf16MinDim + 1, kBf16MinDim), want);
}

TEST(EnginePaths, TheTwoBf16KernelsGiveIdenticalResults) {
  for (EnginePath p : {EnginePath::Avx512Bf16, EnginePath::Amx})
    if (const std::string why = engine_path_unsupported(p); !why.empty()) GTEST_SKIP() << engine_path_name(p) << ": " << why;
  for (int64_t d : {5, 64, 300, 785}) {
    const int64_t n = 450, m = 2100;  // rows over two 384-row blocks, a ragged last panel
    const Points x = gaussian_points(n, d, 70 + d, 1.0f / std::sqrt(static_cast<float>(d)));
    const Points y = gaussian_points(m, d, 71 + d, 1.0f, 0.2f);
    const auto h = random_h(m, 72, 0.3f, true);
    for (int threads : {1, 2}) {
      const Result a = run(x, y, h, EnginePath::Avx512Bf16, threads), b = run(x, y, h, EnginePath::Amx, threads);
      EXPECT_EQ(a.index, b.index) << "d=" << d;
      EXPECT_EQ(a.value, b.value) << "d=" << d;
    }
  }
}

TEST(EnginePaths, NamesParseAndUnsupportedPathsFailNamingTheArgument) {
  for (std::string_view name : engine_path_names()) EXPECT_EQ(engine_path_name(parse_engine_path(name, "engine")), name);
  expect_error_contains([] { parse_engine_path("bf16", "--engine"); },
                        "invalid --engine = 'bf16': expected one of auto, fp32, vnni, avx512bf16, amx");
  const Points x = gaussian_points(3, 40, 1), y = gaussian_points(5, 40, 2);
  std::vector<int64_t> idx(3);
  std::vector<float> val(3);
  if (!cpu_features().amx_bf16) {
    expect_error_contains([] { forced(EnginePath::Amx).validate(); }, "invalid engine = 'amx'");
    expect_error_contains([] { require_engine_path(EnginePath::Amx, "--engine"); }, "lacks AMX-BF16");
    expect_error_contains([&] { row_argmax({x, y, {}}, idx, val, Context{}, forced(EnginePath::Amx)); },
                          "invalid engine = 'amx'");
    EXPECT_EQ(Bf16Columns::build(y, Context{}, EnginePath::Amx), nullptr);
  } else {
    EXPECT_NO_THROW(forced(EnginePath::Amx).validate());
  }
  expect_error_contains([&] { Bf16Columns::build(y, Context{}, EnginePath::Vnni); }, "invalid path = vnni: expected avx512bf16 or amx");
  if (!cpu_features().avx512_bf16)
    expect_error_contains([] { forced(EnginePath::Avx512Bf16).validate(); }, "lacks AVX512-BF16");
  else
    EXPECT_NO_THROW(forced(EnginePath::Avx512Bf16).validate());
  if (LatticeColumns::cpu_supported())  // forced int8 screen on data that is not on a lattice
    expect_error_contains([&] { row_argmax({x, y, {}}, idx, val, Context{}, forced(EnginePath::Vnni)); },
                          "invalid engine = 'vnni': expected y on an 8-bit lattice");
}

TEST(EnginePaths, TheProbeAgreesWithTheCompilerBuiltins) {
  const CpuFeatures& f = cpu_features();
  __builtin_cpu_init();
  EXPECT_EQ(f.avx2, __builtin_cpu_supports("avx2") != 0);
  EXPECT_EQ(f.avx512f, __builtin_cpu_supports("avx512f") != 0);
  EXPECT_EQ(f.avx512_vnni, __builtin_cpu_supports("avx512vnni") != 0);
  EXPECT_EQ(f.avx512_bf16, __builtin_cpu_supports("avx512bf16") != 0);
  EXPECT_EQ(engine_path_unsupported(EnginePath::Fp32), "");
  EXPECT_EQ(f.amx_bf16, __builtin_cpu_supports("amx-bf16") != 0 && f.amx_tile);
  EXPECT_EQ(engine_path_unsupported(EnginePath::Amx).empty(), f.amx_bf16 && f.avx512_bf16);
}

}  // namespace
}  // namespace otgen
