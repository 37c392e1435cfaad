// The score engine against naive double-precision loops written here (not the library's code), on
// awkward sizes, both block paths (SGEMM and direct), tiny forced tiles, masking, extreme scales,
// determinism across thread counts, Gumbel-max frequencies and the error paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/tile_engine.h"
#include "otgen/core/rng.h"
#include "otgen/kernels/scores.h"
#include "test_util.h"

namespace otgen {
namespace {

using test::expect_error_contains;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kInfF = std::numeric_limits<float>::infinity();

Points random_points(int64_t n, int64_t d, uint64_t seed, double sd) {
  Points p(n, d);
  Rng rng(seed);
  for (auto& v : p.data) v = static_cast<float>(sd * rng.normal());
  return p;
}

std::vector<float> random_vec(int64_t m, uint64_t seed, double sd) {
  std::vector<float> v(static_cast<size_t>(m));
  Rng rng(seed, 7);
  for (auto& t : v) t = static_cast<float>(sd * rng.normal());
  return v;
}

// The reference: S_ij in double, and a per-row magnitude for float error bounds.
struct Reference {
  int64_t n, m;
  std::vector<double> s;    // n x m, -inf where h_j = -inf
  std::vector<double> mag;  // n: max_j sum_k |x_ik y_jk| + |h_j|
  double at(int64_t i, int64_t j) const { return s[i * m + j]; }
};

Reference reference(PointsView x, PointsView y, std::span<const float> h) {
  Reference r{x.n, y.n, std::vector<double>(static_cast<size_t>(x.n * y.n)), std::vector<double>(static_cast<size_t>(x.n))};
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t j = 0; j < y.n; ++j) {
      double dot = 0, a = 0;
      for (int64_t k = 0; k < x.d; ++k) {
        dot += static_cast<double>(x.row(i)[k]) * y.row(j)[k];
        a += std::abs(static_cast<double>(x.row(i)[k]) * y.row(j)[k]);
      }
      const double hj = h.empty() ? 0.0 : h[j];
      r.s[i * y.n + j] = dot + hj;
      if (std::isfinite(hj)) r.mag[i] = std::max(r.mag[i], a + std::abs(hj));
    }
  return r;
}

double ref_logit(const Reference& r, double scale, std::span<const float> log_b, int64_t i, int64_t j) {
  const double lb = log_b.empty() ? 0.0 : log_b[j];
  if (std::isinf(r.at(i, j)) || std::isinf(lb)) return -kInf;
  return scale * r.at(i, j) + lb;
}

double ref_lse(const Reference& r, double scale, std::span<const float> log_b, int64_t i) {
  double mx = -kInf;
  for (int64_t j = 0; j < r.m; ++j) mx = std::max(mx, ref_logit(r, scale, log_b, i, j));
  if (mx == -kInf) return -kInf;
  double s = 0;
  for (int64_t j = 0; j < r.m; ++j) s += std::exp(ref_logit(r, scale, log_b, i, j) - mx);
  return mx + std::log(s);
}

// Float error allowance on a score of row i (GEMM accumulation + the bias add).
double score_tol(const Reference& r, int64_t i) { return 1e-6 * (1.0 + r.mag[i]); }

struct Case {
  int64_t n, m, d;
  ScoreOptions opt;
  std::string name() const {
    return "n=" + std::to_string(n) + " m=" + std::to_string(m) + " d=" + std::to_string(d) + " tiles=" +
           std::to_string(opt.tile_rows) + "x" + std::to_string(opt.tile_cols) + " direct<=" +
           std::to_string(opt.direct_max_dim) + " buffer=" + std::to_string(opt.buffer_bytes);
  }
};

std::vector<Case> sweep_cases() {
  std::vector<Case> cases;
  const std::vector<std::pair<int64_t, int64_t>> small = {{0, 3}, {3, 0}, {1, 1}, {2, 7}, {7, 2}, {7, 15},
                                                          {8, 16}, {9, 17}, {1000, 9}, {3, 1000}};
  for (int64_t d : {1, 2, 3, 7, 17, 64, 785}) {
    for (auto [n, m] : small) {
      ScoreOptions gemm;  // tiny tiles: tile - 1, tile, tile + 1 on both axes
      gemm.tile_rows = 8;
      gemm.tile_cols = 16;
      gemm.direct_max_dim = 0;
      ScoreOptions direct = gemm;
      direct.direct_max_dim = 1000;
      cases.push_back({n, m, d, gemm});
      if (d <= 64 || n * m <= 100) cases.push_back({n, m, d, direct});
    }
    // Default tiles, edges of the default tile sizes.
    // Default tiles: 1024 x 1024 on the SGEMM path, 128 x 1024 on the direct path (d <= 8).
    for (auto [n, m] : std::vector<std::pair<int64_t, int64_t>>{{3, 1023}, {2, 1025}, {1025, 3}, {129, 5}, {127, 40}})
      if (d <= 64) cases.push_back({n, m, d, ScoreOptions{}});
  }
  return cases;
}

struct Inputs {
  Points x, y;
  std::vector<float> h, log_b;
};

Inputs make_inputs(const Case& c, uint64_t seed, bool mask) {
  Inputs in{random_points(c.n, c.d, seed, 1.0 / std::sqrt(static_cast<double>(c.d))),
            random_points(c.m, c.d, seed + 1, 1.0), random_vec(c.m, seed + 2, 0.5), random_vec(c.m, seed + 3, 0.3)};
  if (mask)
    for (int64_t j = 0; j < c.m; j += 3) {
      if (j % 2 == 0) in.h[j] = -kInfF;
      else in.log_b[j] = -kInfF;
    }
  return in;
}

TEST(Scores, EveryReducerMatchesNaiveDoubleLoopsOnAwkwardSizes) {
  const Context ctx{2};
  uint64_t seed = 100;
  for (const Case& c : sweep_cases()) {
    for (bool mask : {false, true}) {
      SCOPED_TRACE(c.name() + (mask ? " masked" : ""));
      const Inputs in = make_inputs(c, seed += 10, mask);
      const ScoreProblem p{in.x, in.y, in.h};
      const Reference r = reference(in.x, in.y, in.h);
      const bool any_unmasked = c.m > 0 && !(mask && c.m == 1);
      const int64_t n = c.n, m = c.m;

      // row_argmax
      std::vector<int64_t> idx(n);
      std::vector<float> val(n);
      if (any_unmasked || n == 0) {
        row_argmax(p, idx, val, ctx, c.opt);
        for (int64_t i = 0; i < n; ++i) {
          double best = -kInf;
          for (int64_t j = 0; j < m; ++j) best = std::max(best, r.at(i, j));
          ASSERT_GE(idx[i], 0);
          ASSERT_LT(idx[i], m);
          EXPECT_GE(r.at(i, idx[i]), best - 2 * score_tol(r, i)) << "row " << i;
          EXPECT_NEAR(val[i], best, score_tol(r, i)) << "row " << i;
        }
      } else if (n > 0) {
        EXPECT_THROW(row_argmax(p, idx, val, ctx, c.opt), Error);
      }

      // row_logsumexp and softmax_column_sums (one pass, and two passes)
      const float scale = 1.7f;
      std::vector<float> lse(n), lse2(n), lse3(n);
      std::vector<double> cs(m, -1.0), cs2(m, -1.0);
      row_logsumexp(p, scale, in.log_b, lse, ctx, c.opt);
      softmax_column_sums(p, scale, in.log_b, cs, lse2, ctx, c.opt);
      ScoreOptions two = c.opt;
      two.buffer_bytes = 0;
      softmax_column_sums(p, scale, in.log_b, cs2, lse3, ctx, two);
      std::vector<double> ref_cs(m, 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const double l = ref_lse(r, scale, in.log_b, i);
        const double tol = 2e-6 * (1 + std::abs(l)) + scale * score_tol(r, i);
        if (l == -kInf) {
          EXPECT_EQ(lse[i], -kInfF);
          EXPECT_EQ(lse2[i], -kInfF);
          continue;
        }
        EXPECT_NEAR(lse[i], l, tol) << "row " << i;
        EXPECT_NEAR(lse2[i], l, tol) << "row " << i;
        EXPECT_NEAR(lse3[i], l, tol) << "row " << i;
        for (int64_t j = 0; j < m; ++j) ref_cs[j] += std::exp(ref_logit(r, scale, in.log_b, i, j) - l);
      }
      for (int64_t j = 0; j < m; ++j) {
        const double tol = 1e-5 * (1 + ref_cs[j]);
        EXPECT_NEAR(cs[j], ref_cs[j], tol) << "column " << j;
        EXPECT_NEAR(cs2[j], ref_cs[j], tol) << "column " << j;
        if (std::isinf(in.h[j]) || std::isinf(in.log_b[j])) {
          EXPECT_EQ(cs[j], 0.0) << "masked column " << j;
        }
      }

      // row_topk
      if (m >= 1) {
        for (int64_t k : {int64_t{1}, std::min<int64_t>(3, m), m}) {
          std::vector<int64_t> ti(n * k);
          std::vector<float> tv(n * k);
          row_topk(p, k, ti, tv, ctx, c.opt);
          for (int64_t i = 0; i < n; ++i) {
            std::vector<double> sorted(r.s.begin() + i * m, r.s.begin() + (i + 1) * m);
            std::sort(sorted.begin(), sorted.end(), std::greater<>());
            std::vector<int64_t> seen(ti.begin() + i * k, ti.begin() + (i + 1) * k);
            std::sort(seen.begin(), seen.end());
            EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end()) << "duplicate index in row " << i;
            for (int64_t q = 0; q < k; ++q) {
              const int64_t j = ti[i * k + q];
              ASSERT_GE(j, 0);
              ASSERT_LT(j, m);
              if (sorted[q] == -kInf) {
                EXPECT_EQ(tv[i * k + q], -kInfF);
              } else {
                EXPECT_NEAR(tv[i * k + q], sorted[q], 2 * score_tol(r, i)) << "row " << i << " rank " << q;
                EXPECT_NEAR(r.at(i, j), sorted[q], 2 * score_tol(r, i)) << "row " << i << " rank " << q;
              }
              if (q > 0) {
                EXPECT_GE(tv[i * k + q - 1], tv[i * k + q]);
              }
            }
          }
        }
      }

      // Squared-distance kernels (no h)
      const double alpha = 0.3;
      std::vector<float> kl(n);
      kernel_row_logsumexp(in.x, in.y, alpha, in.log_b, kl, ctx, c.opt);
      const std::vector<double> alphas = {0.05, 0.5};
      std::vector<double> ks(n * 2), ds(n);
      kernel_row_sums(in.x, in.y, alphas, ks, ctx, c.opt);
      distance_row_sums(in.x, in.y, ds, ctx, c.opt);
      for (int64_t i = 0; i < n; ++i) {
        std::vector<double> d2(m);
        double mx = -kInf, xn = 0;
        for (int64_t k = 0; k < c.d; ++k) xn += double(in.x.row(i)[k]) * in.x.row(i)[k];
        for (int64_t j = 0; j < m; ++j) {
          double s = 0;
          for (int64_t k = 0; k < c.d; ++k) s += std::pow(double(in.x.row(i)[k]) - in.y.row(j)[k], 2);
          d2[j] = s;
        }
        double k0 = 0, k1 = 0, dsum = 0, ynmax = 0;
        for (int64_t j = 0; j < m; ++j) {
          double yn = 0;
          for (int64_t k = 0; k < c.d; ++k) yn += double(in.y.row(j)[k]) * in.y.row(j)[k];
          ynmax = std::max(ynmax, yn);
          const double lb = in.log_b[j];
          if (!std::isinf(lb)) mx = std::max(mx, lb - alpha * d2[j]);
          k0 += std::exp(-alphas[0] * d2[j]);
          k1 += std::exp(-alphas[1] * d2[j]);
          dsum += std::sqrt(d2[j]);
        }
        // GEMM path: |x|^2 + |y|^2 - 2<x,y> loses ~1e-7 of the norms.
        const double d2tol = 4e-7 * (1 + xn + ynmax) * std::sqrt(double(c.d));
        double sl = 0;
        for (int64_t j = 0; j < m; ++j)
          if (!std::isinf(in.log_b[j])) sl += std::exp(in.log_b[j] - alpha * d2[j] - mx);
        if (mx == -kInf) {
          EXPECT_EQ(kl[i], -kInfF);
        } else {
          EXPECT_NEAR(kl[i], mx + std::log(sl), 2e-6 * (1 + std::abs(mx)) + alpha * d2tol) << "row " << i;
        }
        EXPECT_NEAR(ks[i * 2], k0, 2e-6 * k0 + alphas[0] * d2tol * k0 + 1e-12) << "row " << i;
        EXPECT_NEAR(ks[i * 2 + 1], k1, 2e-6 * k1 + alphas[1] * d2tol * k1 + 1e-12) << "row " << i;
        // |sqrt(a) - sqrt(b)| <= min(sqrt|a - b|, |a - b| / sqrt(b)).
        double dtol = 1e-6 * dsum;
        for (int64_t j = 0; j < m; ++j) dtol += std::min(std::sqrt(d2tol), d2tol / std::sqrt(d2[j]));
        EXPECT_NEAR(ds[i], dsum, dtol) << "row " << i;
      }

      // score_matrix
      std::vector<float> sm(n * m);
      score_matrix(p, sm, ctx, c.opt);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < m; ++j) {
          if (std::isinf(r.at(i, j))) EXPECT_EQ(sm[i * m + j], -kInfF);
          else EXPECT_NEAR(sm[i * m + j], r.at(i, j), score_tol(r, i));
        }
    }
  }
}

#if defined(__AVX2__) && defined(__FMA__)
TEST(ScoreKernels, VectorPhiloxMatchesScalarPhilox) {
  // Counters straddling 2^32 exercise the carry into the second counter word.
  for (uint64_t key : {uint64_t{0}, uint64_t{1234}, ~uint64_t{0} - 5})
    for (uint64_t hi : {uint64_t{0}, uint64_t{7}, (uint64_t{1} << 32) + 3})
      for (uint64_t lo : {uint64_t{0}, uint64_t{1000}, (uint64_t{1} << 32) - 3, ~uint64_t{0} - 20}) {
        alignas(32) uint32_t w[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(w), kernels::philox8_word0(key, hi, lo));
        for (int q = 0; q < 8; ++q) EXPECT_EQ(w[q], philox4x32(key, hi, lo + q)[0]) << key << " " << hi << " " << lo << "+" << q;
      }
}

TEST(ScoreKernels, VectorExpIsAccurateAndZeroBelowTheFloatRange) {
  alignas(32) float in[8], out[8];
  for (float base = -100.0f; base < 87.5f; base += 0.37f) {  // up to 87.8: the documented range
    for (int q = 0; q < 8; ++q) in[q] = base + 0.041f * q;
    _mm256_store_ps(out, kernels::exp8(_mm256_load_ps(in)));
    for (int q = 0; q < 8; ++q) {
      if (in[q] < -87.0f) {
        EXPECT_EQ(out[q], 0.0f);
      } else {
        EXPECT_NEAR(out[q], std::exp(double(in[q])), 3e-7 * std::exp(double(in[q]))) << in[q];
      }
    }
  }
  for (int q = 0; q < 8; ++q) in[q] = -kInfF;
  _mm256_store_ps(out, kernels::exp8(_mm256_load_ps(in)));
  for (float v : out) EXPECT_EQ(v, 0.0f);
}
#endif

TEST(Scores, RowGroupsBoundedByThePartialBudgetGiveCorrectResults) {
  // Per-(row, column tile) partials are capped at 16 MiB, so many column tiles (tile_cols = 1) or a
  // large k split the rows into several groups processed one after another.
  const Context ctx{2};
  {
    const int64_t n = 500, m = 3000, d = 2;  // 500 x 3000 slots x 12 bytes > 16 MiB: 2 groups
    const Points x = random_points(n, d, 21, 1.0), y = random_points(m, d, 22, 1.0);
    const std::vector<float> h = random_vec(m, 23, 1.0);
    const Reference r = reference(x, y, h);
    ScoreOptions opt;
    opt.tile_rows = 8;
    opt.tile_cols = 1;
    std::vector<int64_t> idx(n);
    std::vector<float> val(n), lse(n);
    row_argmax({x, y, h}, idx, val, ctx, opt);
    row_logsumexp({x, y, h}, 2.0f, {}, lse, ctx, opt);
    for (int64_t i = 0; i < n; ++i) {
      double best = -kInf;
      for (int64_t j = 0; j < m; ++j) best = std::max(best, r.at(i, j));
      EXPECT_GE(r.at(i, idx[i]), best - 2 * score_tol(r, i)) << "row " << i;
      const double l = ref_lse(r, 2.0, {}, i);
      EXPECT_NEAR(lse[i], l, 2e-6 * (1 + std::abs(l)) + 2 * score_tol(r, i)) << "row " << i;
    }
  }
  {
    // One-pass softmax_column_sums in 3 balanced groups of 34 rows (buffer for 40 rows of 50 floats).
    const int64_t n = 100, m = 50, d = 7;
    const Points x = random_points(n, d, 26, 0.5), y = random_points(m, d, 27, 1.0);
    const std::vector<float> h = random_vec(m, 28, 1.0);
    const Reference r = reference(x, y, h);
    ScoreOptions opt;
    opt.tile_rows = 16;
    opt.tile_cols = 16;
    opt.buffer_bytes = 40 * m * 4;
    std::vector<float> lse(n);
    std::vector<double> cs(m), ref_cs(m, 0.0);
    softmax_column_sums({x, y, h}, 1.5f, {}, cs, lse, ctx, opt);
    for (int64_t i = 0; i < n; ++i) {
      const double l = ref_lse(r, 1.5, {}, i);
      EXPECT_NEAR(lse[i], l, 2e-6 * (1 + std::abs(l)) + 2 * score_tol(r, i));
      for (int64_t j = 0; j < m; ++j) ref_cs[j] += std::exp(ref_logit(r, 1.5, {}, i, j) - l);
    }
    for (int64_t j = 0; j < m; ++j) EXPECT_NEAR(cs[j], ref_cs[j], 1e-5 * (1 + ref_cs[j])) << "column " << j;
  }
  {
    const int64_t n = 40, m = 1000, d = 3, k = 1000;  // 63 tiles x 12 KB per row: 3 groups of 16
    const Points x = random_points(n, d, 24, 1.0), y = random_points(m, d, 25, 1.0);
    const Reference r = reference(x, y, {});
    ScoreOptions opt;
    opt.tile_rows = 8;
    opt.tile_cols = 16;
    std::vector<int64_t> ti(n * k);
    std::vector<float> tv(n * k);
    row_topk({x, y, {}}, k, ti, tv, ctx, opt);
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> sorted(r.s.begin() + i * m, r.s.begin() + (i + 1) * m);
      std::sort(sorted.begin(), sorted.end(), std::greater<>());
      for (int64_t q = 0; q < k; q += 97) EXPECT_NEAR(tv[i * k + q], sorted[q], 2 * score_tol(r, i)) << i << " " << q;
      std::vector<int64_t> all(ti.begin() + i * k, ti.begin() + (i + 1) * k);
      std::sort(all.begin(), all.end());
      for (int64_t j = 0; j < m; ++j) ASSERT_EQ(all[j], j) << "row " << i << " is not a permutation";
    }
  }
}

TEST(Scores, ArgmaxAndTopkTiesGoToTheLowestIndex) {
  // Integer data: every score is exact in float, so ties are real ties. Columns 3, 7, 11 duplicate
  // column 1; with tiny tiles the duplicates land in different tiles.
  const int64_t n = 5, m = 13, d = 3;
  Points x(n, d), y(m, d);
  for (int64_t i = 0; i < n * d; ++i) x.data[i] = static_cast<float>((i * 7) % 5) - 2.0f;
  for (int64_t j = 0; j < m * d; ++j) y.data[j] = static_cast<float>((j * 3) % 7) - 3.0f;
  for (int64_t j : {3, 7, 11})
    for (int64_t k = 0; k < d; ++k) y.row(j)[k] = y.row(1)[k];
  std::vector<float> h(m, 0.0f);
  for (int64_t i = 0; i < n; ++i) x.row(i)[0] = 1, x.row(i)[1] = 1, x.row(i)[2] = 1;  // s_j = sum y_j
  // Make column 1 (and its duplicates) the strict winner by +100.
  for (int64_t j : {1, 3, 7, 11}) h[j] = 100.0f;
  for (int64_t dm : {0, 8}) {
    ScoreOptions opt;
    opt.tile_rows = 2;
    opt.tile_cols = 2;
    opt.direct_max_dim = dm;
    std::vector<int64_t> idx(n), ti(n * 4);
    std::vector<float> val(n), tv(n * 4);
    row_argmax({x, y, h}, idx, val, Context{2}, opt);
    row_topk({x, y, h}, 4, ti, tv, Context{2}, opt);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(idx[i], 1);
      EXPECT_EQ((std::vector<int64_t>(ti.begin() + i * 4, ti.begin() + i * 4 + 4)), (std::vector<int64_t>{1, 3, 7, 11}));
    }
  }
}

TEST(Scores, ExtremeScalesGiveFiniteAccurateResults) {
  const int64_t n = 37, m = 300, d = 17;
  const Points x = random_points(n, d, 1, 1.0), y = random_points(m, d, 2, 1.0);
  const std::vector<float> h = random_vec(m, 3, 2.0);
  const Reference r = reference(x, y, h);
  ScoreOptions opt;
  opt.tile_rows = 16;
  opt.tile_cols = 64;
  for (float scale : {1e-4f, 1e-2f, 1.0f, 1e2f, 1e4f}) {
    SCOPED_TRACE("scale " + std::to_string(scale));
    std::vector<float> lse(n);
    std::vector<double> cs(m);
    softmax_column_sums({x, y, h}, scale, {}, cs, lse, Context{2}, opt);
    std::vector<double> ref_cs(m, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const double l = ref_lse(r, scale, {}, i);
      ASSERT_TRUE(std::isfinite(lse[i]));
      EXPECT_NEAR(lse[i], l, 2e-6 * std::abs(l) + 1e-5 + scale * score_tol(r, i));
      for (int64_t j = 0; j < m; ++j) ref_cs[j] += std::exp(ref_logit(r, scale, {}, i, j) - l);
    }
    double total = 0;
    for (int64_t j = 0; j < m; ++j) {
      ASSERT_TRUE(std::isfinite(cs[j]));
      total += cs[j];
      // At scale 1e4 a score error of 1e-6 moves a logit by 1e-2: compare loosely there.
      EXPECT_NEAR(cs[j], ref_cs[j], 1e-4 * (1 + ref_cs[j]) * std::max(1.0f, scale / 100));
    }
    EXPECT_NEAR(total, n, 1e-4 * n);  // every row is a probability vector
  }
}

TEST(Scores, ResultsAreBitIdenticalAcrossRunsAndThreadCounts) {
  // Large enough (n m (d + 16) > 4e7) for the engine to use both threads.
  const int64_t n = 203, m = 3000, d = 100;
  const Points x = random_points(n, d, 4, 0.1), y = random_points(m, d, 5, 1.0);
  const std::vector<float> h = random_vec(m, 6, 1.0);
  ScoreOptions opt;
  opt.tile_rows = 32;
  opt.tile_cols = 128;
  auto run = [&](int threads) {
    std::vector<int64_t> idx(n), g(n);
    std::vector<float> val(n), lse(n), lse2(n);
    std::vector<double> cs(m);
    row_argmax({x, y, h}, idx, val, Context{threads}, opt);
    row_logsumexp({x, y, h}, 3.0f, {}, lse, Context{threads}, opt);
    softmax_column_sums({x, y, h}, 3.0f, {}, cs, lse2, Context{threads}, opt);
    row_gumbel_argmax({x, y, h}, 3.0f, {}, 99, g, Context{threads}, opt);
    ScoreOptions two = opt;
    two.buffer_bytes = 0;
    std::vector<float> lse3(n), kl(n), tv(n * 5);
    std::vector<double> cs2(m), ks(n * 2), ds(n);
    std::vector<int64_t> ti(n * 5);
    softmax_column_sums({x, y, h}, 3.0f, {}, cs2, lse3, Context{threads}, two);
    row_topk({x, y, h}, 5, ti, tv, Context{threads}, opt);
    const std::vector<double> alphas = {0.01, 0.1};
    kernel_row_logsumexp(x, y, 0.05, {}, kl, Context{threads}, opt);
    kernel_row_sums(x, y, alphas, ks, Context{threads}, opt);
    distance_row_sums(x, y, ds, Context{threads}, opt);
    return std::make_tuple(idx, val, lse, lse2, cs, g, cs2, lse3, ti, tv, kl, ks, ds);
  };
  const auto a = run(2), b = run(2), c = run(1);
  EXPECT_TRUE(a == b) << "same threads, different bits";
  EXPECT_TRUE(a == c) << "1 vs 2 threads, different bits";
}

TEST(Scores, GumbelArgmaxMatchesTheDefinitionWithGumbelAt) {
  // index[i] = argmax_j (scale * S_ij + log_b_j + gumbel_at(seed, row_offset + i, j)), checked naively
  // for peaked (pruned) and flat rows.
  const int64_t n = 150, m = 700, d = 5;
  const Points x = random_points(n, d, 7, 1.0), y = random_points(m, d, 8, 1.0);
  const std::vector<float> h = random_vec(m, 9, 1.0);
  std::vector<float> log_b = random_vec(m, 10, 0.5);
  log_b[4] = -kInfF;
  const Reference r = reference(x, y, h);
  for (float scale : {1e-3f, 0.3f, 3.0f, 300.0f}) {
    for (int64_t dm : {0, 8}) {
      ScoreOptions opt;
      opt.tile_rows = 16;
      opt.tile_cols = 100;
      opt.direct_max_dim = dm;
      std::vector<int64_t> g(n), g1(60), g2(n - 60);
      row_gumbel_argmax({x, y, h}, scale, log_b, 1234, g, Context{2}, opt, 5);
      // Drawn in two pieces with row_offset: the same answer.
      row_gumbel_argmax({{x.data.data(), 60, d}, y, h}, scale, log_b, 1234, g1, Context{1}, opt, 5);
      row_gumbel_argmax({{x.row(60), n - 60, d}, y, h}, scale, log_b, 1234, g2, Context{2}, opt, 65);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(g[i], i < 60 ? g1[i] : g2[i - 60]);
      int64_t checked = 0;
      for (int64_t i = 0; i < n; ++i) {
        double best = -kInf, second = -kInf;
        int64_t arg = -1;
        for (int64_t j = 0; j < m; ++j) {
          const double l = ref_logit(r, scale, log_b, i, j);
          if (l == -kInf) continue;
          const double v = l + gumbel_at(1234, 5 + i, j);
          if (v > best) second = best, best = v, arg = j;
          else second = std::max(second, v);
        }
        EXPECT_NE(g[i], 4);
        if (best - second > 1e-3 * (1 + scale)) {  // float logits decide near-ties differently
          EXPECT_EQ(g[i], arg) << "row " << i << " scale " << scale;
          ++checked;
        }
      }
      EXPECT_GT(checked, n * 9 / 10);
    }
  }
}

TEST(Scores, GumbelArgmaxFrequenciesMatchSoftmaxProbabilities) {
  // One x row repeated N times, 6 columns with known logits: counts ~ Multinomial(N, softmax).
  const int64_t N = 30000, m = 6, d = 2;
  Points x(N, d), y(m, d);
  for (int64_t i = 0; i < N; ++i) x.row(i)[0] = 1.0f, x.row(i)[1] = 0.5f;
  const float yv[] = {0.0f, 0.0f, 1.0f, 0.0f, 0.5f, 1.0f, -1.0f, 0.0f, 2.0f, -2.0f, 0.2f, 0.1f};
  std::memcpy(y.data.data(), yv, sizeof(yv));
  std::vector<float> log_b = {0.0f, -1.0f, 0.0f, 0.5f, 0.0f, -0.2f};
  const float scale = 1.3f;
  std::vector<int64_t> idx(N);
  row_gumbel_argmax({x, y, {}}, scale, log_b, 42, idx, Context{2});
  std::vector<double> p(m), count(m, 0.0);
  double z = 0;
  for (int64_t j = 0; j < m; ++j) z += p[j] = std::exp(scale * (yv[2 * j] + 0.5 * yv[2 * j + 1]) + log_b[j]);
  for (int64_t i = 0; i < N; ++i) count[idx[i]] += 1;
  double chi2 = 0;
  for (int64_t j = 0; j < m; ++j) chi2 += std::pow(count[j] - N * p[j] / z, 2) / (N * p[j] / z);
  // 5 degrees of freedom: P(chi2 > 25) ~ 1.4e-4 for a correct sampler.
  EXPECT_LT(chi2, 25.0);
  EXPECT_GT(chi2, 0.05);  // not suspiciously exact either (P(chi2 < 0.05) ~ 4e-5)
}

TEST(Scores, MaskedColumnsAreNeverChosenAndAllMaskedRowsAreReported) {
  const int64_t n = 20, m = 10, d = 3;
  const Points x = random_points(n, d, 11, 1.0), y = random_points(m, d, 12, 1.0);
  std::vector<float> h(m, 0.0f), log_b(m, 0.0f);
  for (int64_t j = 0; j < m; ++j) (j % 2 ? h[j] : log_b[j]) = -kInfF;
  h[2] = 50.0f;  // a huge but masked-by-log_b column
  std::vector<int64_t> g(n);
  // Every column is masked by h or log_b.
  expect_error_contains([&] { row_gumbel_argmax({x, y, h}, 1.0f, log_b, 1, g, Context{1}); }, "all masked");
  std::vector<float> lse(n);
  std::vector<double> cs(m);
  softmax_column_sums({x, y, h}, 1.0f, log_b, cs, lse, Context{1});
  for (float l : lse) EXPECT_EQ(l, -kInfF);
  for (double c : cs) EXPECT_EQ(c, 0.0);
  log_b[3] = 0.0f;  // h[3] is -inf: still all masked
  expect_error_contains([&] { row_gumbel_argmax({x, y, h}, 1.0f, log_b, 1, g, Context{1}); }, "all masked");
  h[3] = 0.0f;  // now column 3 is the only one left
  row_gumbel_argmax({x, y, h}, 1.0f, log_b, 1, g, Context{1});
  for (int64_t v : g) EXPECT_EQ(v, 3);
  std::vector<float> h_all(m, -kInfF);
  std::vector<int64_t> idx(n);
  std::vector<float> val(n);
  expect_error_contains([&] { row_argmax({x, y, h_all}, idx, val, Context{1}); }, "all masked");
  expect_error_contains([&] { row_argmax({x, {nullptr, 0, d}, {}}, idx, val, Context{1}); }, "all masked");
}

TEST(Scores, ErrorsNameTheArgument) {
  const Points x = random_points(4, 3, 1, 1.0), y = random_points(5, 3, 2, 1.0), y2 = random_points(5, 2, 2, 1.0);
  std::vector<int64_t> idx(4);
  std::vector<float> val(4), lse(4), h(5, 0.0f);
  std::vector<double> cs(5);
  const Context ctx{1};
  expect_error_contains([&] { row_argmax({x, y2, {}}, idx, val, ctx); }, "dimension 2");
  expect_error_contains([&] { row_argmax({x, y, {}}, std::span<int64_t>(idx).first(3), val, ctx); }, "index");
  expect_error_contains([&] { row_argmax({x, y, std::span<const float>(h).first(4)}, idx, val, ctx); }, "h");
  h[2] = std::nanf("");
  expect_error_contains([&] { row_argmax({x, y, h}, idx, val, ctx); }, "invalid h = nan at index 2");
  h[2] = kInfF;
  expect_error_contains([&] { row_logsumexp({x, y, h}, 1.0f, {}, lse, ctx); }, "invalid h = inf");
  h[2] = 0.0f;
  expect_error_contains([&] { row_logsumexp({x, y, h}, 0.0f, {}, lse, ctx); }, "scale");
  expect_error_contains([&] { row_logsumexp({x, y, h}, -1.0f, {}, lse, ctx); }, "scale");
  expect_error_contains([&] { row_logsumexp({x, y, h}, kInfF, {}, lse, ctx); }, "scale");
  expect_error_contains([&] { softmax_column_sums({x, y, h}, 1.0f, {}, std::span<double>(cs).first(4), lse, ctx); },
                        "col_sums");
  std::vector<float> lb(4, 0.0f);
  expect_error_contains([&] { softmax_column_sums({x, y, h}, 1.0f, lb, cs, lse, ctx); }, "log_b");
  std::vector<int64_t> ti(8);
  std::vector<float> tv(8);
  expect_error_contains([&] { row_topk({x, y, h}, 0, ti, tv, ctx); }, "invalid k = 0");
  expect_error_contains([&] { row_topk({x, y, h}, 6, ti, tv, ctx); }, "invalid k = 6");
  expect_error_contains([&] { kernel_row_logsumexp(x, y, 0.0, {}, lse, ctx); }, "alpha");
  std::vector<double> alphas = {1.0, -1.0}, out(8);
  expect_error_contains([&] { kernel_row_sums(x, y, alphas, out, ctx); }, "alphas");
  ScoreOptions bad;
  bad.tile_rows = 0;
  expect_error_contains([&] { row_argmax({x, y, {}}, idx, val, ctx, bad); }, "tile_rows");
  bad = {};
  bad.direct_max_dim = -1;
  expect_error_contains([&] { row_argmax({x, y, {}}, idx, val, ctx, bad); }, "direct_max_dim");
}

}  // namespace
}  // namespace otgen

namespace otgen {
namespace {

TEST(ScorePartials, ShardsOfYMergedInColumnOrderGiveTheWholeResult) {
  // y cut into three shards at multiples of tile_cols: each shard's partials, with its column_offset,
  // merged with the public merges, equal the call on the whole y (argmax and Gumbel-max bit for bit;
  // the LSE to double rounding), on both block paths. Shard 2 is fully masked in one variant.
  const int64_t n = 97, m = 700, d = 9, tc = 64;
  const Points x = random_points(n, d, 21, 1.0), y = random_points(m, d, 22, 1.0);
  std::vector<float> h = random_vec(m, 23, 1.0), log_b = random_vec(m, 24, 0.5);
  const int64_t cuts[] = {0, 3 * tc, 5 * tc, m};
  for (bool mask_shard : {false, true}) {
    if (mask_shard) std::fill(h.begin() + cuts[1], h.begin() + cuts[2], -kInfF);
    for (int64_t dm : {0, 16}) {
      ScoreOptions opt;
      opt.tile_rows = 16;
      opt.tile_cols = tc;
      opt.direct_max_dim = dm;
      const Context ctx{2};
      std::vector<int64_t> idx(n), g(n);
      std::vector<float> val(n), lse(n);
      row_argmax({x, y, h}, idx, val, ctx, opt);
      row_gumbel_argmax({x, y, h}, 2.0f, log_b, 77, g, ctx, opt, 3);
      row_logsumexp({x, y, h}, 2.0f, log_b, lse, ctx, opt);
      std::vector<ArgmaxPartial<float>> pa(n * 3);
      std::vector<ArgmaxPartial<double>> pg(n * 3);
      std::vector<LsePartial> pl(n * 3);
      for (int s = 0; s < 3; ++s) {
        const int64_t c0 = cuts[s], mc = cuts[s + 1] - c0;
        const ScoreProblem shard{x, {y.row(c0), mc, d}, std::span<const float>(h).subspan(c0, mc), static_cast<uint64_t>(c0)};
        std::vector<ArgmaxPartial<float>> a(n);
        std::vector<ArgmaxPartial<double>> b(n);
        std::vector<LsePartial> l(n);
        row_argmax_partials(shard, a, ctx, opt);
        row_gumbel_partials(shard, 2.0f, std::span<const float>(log_b).subspan(c0, mc), 77, b, ctx, opt, 3);
        row_logsumexp_partials(shard, 2.0f, std::span<const float>(log_b).subspan(c0, mc), l, ctx, opt);
        for (int64_t i = 0; i < n; ++i) pa[i * 3 + s] = a[i], pg[i * 3 + s] = b[i], pl[i * 3 + s] = l[i];
      }
      for (int64_t i = 0; i < n; ++i) {
        const auto ma = merge_argmax(std::span<const ArgmaxPartial<float>>(pa).subspan(i * 3, 3));
        EXPECT_EQ(ma.index, idx[i]) << "row " << i;
        EXPECT_EQ(ma.value, val[i]) << "row " << i;
        EXPECT_EQ(merge_argmax(std::span<const ArgmaxPartial<double>>(pg).subspan(i * 3, 3)).index, g[i]) << "row " << i;
        const double l = lse_value(merge_lse(std::span<const LsePartial>(pl).subspan(i * 3, 3)));
        EXPECT_NEAR(l, lse[i], 1e-6 * (1 + std::abs(l))) << "row " << i;
        if (mask_shard) EXPECT_EQ(pa[i * 3 + 1].index, -1);
      }
    }
  }
}

TEST(ScorePartials, MergesFollowTheirDefinitions) {
  // merge_argmax: largest value, lowest index on ties, empty partials ignored, in any order.
  using A = ArgmaxPartial<float>;
  const std::vector<A> parts = {{1.0f, 7}, {}, {2.0f, 9}, {2.0f, 3}, {-kInfF, 1}};
  EXPECT_EQ(merge_argmax(std::span<const A>(parts)).index, 3);
  EXPECT_EQ(merge_argmax(std::span<const A>(parts.data() + 1, 1)).index, -1);
  // merge_lse: log(e^1 * 2 + e^3 * 0.5) against the closed form; an empty partial changes nothing.
  const std::vector<LsePartial> l = {{1.0f, 2.0}, {}, {3.0f, 0.5}};
  EXPECT_NEAR(lse_value(merge_lse(std::span<const LsePartial>(l))), std::log(2 * std::exp(1.0) + 0.5 * std::exp(3.0)), 1e-14);
  EXPECT_EQ(lse_value(merge_lse(std::span<const LsePartial>(l.data() + 1, 1))), -kInf);
  // merge_topk: the k best of sorted lists, ties by index; empty entries last.
  const std::vector<TopkEntry> t = {{5, 4}, {1, 0}, {}, {5, 2}, {3, 8}, {1, 1}, {}, {}, {}};
  std::vector<TopkEntry> out(3);
  merge_topk(t, 3, out);
  EXPECT_EQ(out[0].index, 2);
  EXPECT_EQ(out[1].index, 4);
  EXPECT_EQ(out[2].index, 8);
}

}  // namespace
}  // namespace otgen

#include <thread>

namespace otgen {
namespace {

TEST(Scores, ConcurrentCallsRestoreTheBlasThreadCount) {
  // Engine calls pin OpenBLAS to one thread while any of them runs; calls from several threads at once
  // leave the count as it was when the last one returns.
  const int before = openblas_get_num_threads();
  openblas_set_num_threads(2);
  const Points x = random_points(64, 40, 31, 1.0), y = random_points(500, 40, 32, 1.0);
  int wrong = 0;
  for (int round = 0; round < 20; ++round) {
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t)
      pool.emplace_back([&] {
        std::vector<int64_t> idx(64);
        std::vector<float> val(64);
        for (int k = 0; k < 10; ++k) row_argmax({x, y, {}}, idx, val, Context{1});
      });
    for (auto& t : pool) t.join();
    if (openblas_get_num_threads() != 2) ++wrong, openblas_set_num_threads(2);
  }
  EXPECT_EQ(wrong, 0) << "rounds that left OpenBLAS at another thread count";
  openblas_set_num_threads(before);
}

}  // namespace
}  // namespace otgen
