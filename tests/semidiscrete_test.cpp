// Semidiscrete OT: closed forms (1-D monotone map, symmetric targets), the gradient and chi2 against
// naive double-precision loops, eps -> 0 continuity, conditional potentials, the maps and every
// bad-input path, and the CLI.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "ot/semidiscrete_internal.h"
#include "otgen/data/data.h"
#include "otgen/core/npy.h"
#include "otgen/ot/potential_meta.h"
#include "otgen/core/record.h"
#include "otgen/core/rng.h"
#include "otgen/ot/sdot_options.h"
#include "otgen/ot/semidiscrete.h"
#include "test_util.h"

namespace otgen {
namespace {

using sdot_detail::accumulate_batch;
using sdot_detail::draw_noise;
using sdot_detail::prepare;

constexpr double kInf = std::numeric_limits<double>::infinity();

double inv_phi(double p) {  // standard normal quantile by bisection (independent of the library)
  double lo = -12, hi = 12;
  for (int it = 0; it < 200; ++it) {
    const double m = 0.5 * (lo + hi);
    (0.5 * std::erfc(-m / std::sqrt(2.0)) < p ? lo : hi) = m;
  }
  return 0.5 * (lo + hi);
}

SemidiscreteMap mk(PointsView y, std::span<const float> g, std::span<const double> b = {}, double eps = 0,
                   SdotCost cost = SdotCost::SqEuclideanHalf, std::span<const int64_t> labels = {}) {
  SemidiscreteMap m;
  m.y = y;
  m.g = g;
  m.b = b;
  m.epsilon = eps;
  m.cost = cost;
  m.labels = labels;
  return m;
}

Context quiet_ctx(int threads = 1, uint64_t seed = 0) {
  Context c;
  c.threads = threads;
  c.seed = seed;
  c.quiet = true;
  return c;
}

std::vector<float> sorted_normal(int n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> y(n);
  for (auto& v : y) v = static_cast<float>(r.normal());
  std::sort(y.begin(), y.end());
  return y;
}

// SPEC.md §1: g_{j+1} - g_j = (y_{j+1} - y_j) ((y_{j+1} + y_j) / 2 - q_j), q_j = Phi^{-1}(b_1 + ... + b_j),
// centred over the points.
std::vector<double> exact_1d(const std::vector<float>& y, const std::vector<double>& b) {
  const size_t N = y.size();
  std::vector<double> g(N, 0.0);
  double cum = 0;
  for (size_t j = 0; j + 1 < N; ++j) {
    cum += b[j];
    g[j + 1] = g[j] + (static_cast<double>(y[j + 1]) - y[j]) * (0.5 * (static_cast<double>(y[j + 1]) + y[j]) - inv_phi(cum));
  }
  const double mean = std::accumulate(g.begin(), g.end(), 0.0) / static_cast<double>(N);
  for (auto& v : g) v -= mean;
  return g;
}

SemidiscreteOT::Options accurate_options(int64_t steps) {
  SemidiscreteOT::Options o;
  o.optimizer = SdotOptimizer::Adam;
  o.lr = 0.001;
  o.lr_final = 1e-5;
  o.averaging = SdotAveraging::Polyak;
  o.steps = steps;
  o.batch_size = 1024;
  o.chi2_threshold = 0;
  o.target_chi2 = 0;
  o.chi2_every = steps;
  o.chi2_repeats = 4;
  return o;
}

double max_abs_diff(std::span<const float> a, const std::vector<double>& b) {
  double e = 0;
  for (size_t j = 0; j < b.size(); ++j) e = std::max(e, std::abs(a[j] - b[j]));
  return e;
}

TEST(PotentialMeta, ContentHashInPiecesEqualsTheWholeHash) {
  // A sharded run's rank 0 hashes --data in row chunks: any cut of the bytes gives content_hash's value.
  std::vector<unsigned char> bytes(1000);
  for (size_t k = 0; k < bytes.size(); ++k) bytes[k] = static_cast<unsigned char>((k * 2654435761u) >> 13);
  for (size_t total : {size_t{0}, size_t{5}, size_t{32}, size_t{33}, size_t{1000}}) {
    const std::string whole = content_hash(bytes.data(), total);
    for (size_t piece : {size_t{1}, size_t{7}, size_t{31}, size_t{32}, size_t{64}, size_t{999}}) {
      ContentHash h;
      for (size_t at = 0; at < total; at += piece) h.add(bytes.data() + at, std::min(piece, total - at));
      EXPECT_EQ(h.hex(), whole) << total << " bytes in pieces of " << piece;
    }
  }
  EXPECT_NE(content_hash(bytes.data(), 999), content_hash(bytes.data(), 1000));
}

TEST(Semidiscrete1D, UniformWeightsMatchClosedFormAndTvBelowOnePercent) {
  const auto y = sorted_normal(50, 3);
  const std::vector<double> b(50, 1.0 / 50);
  const SemidiscreteOT ot(accurate_options(4000));
  const auto res = ot.fit(PointsView{y.data(), 50, 1}, {}, quiet_ctx());
  EXPECT_EQ(res.termination, Termination::MaxSteps);
  EXPECT_LT(max_abs_diff(res.g, exact_1d(y, b)), 1e-2);
  const auto st = sdot_check(ot.map(PointsView{y.data(), 50, 1}, {}, res), 4096, 100, 11, quiet_ctx());
  EXPECT_LT(st.tv, 0.01);
  EXPECT_LT(std::abs(st.chi2), 0.01);
  EXPECT_EQ(st.empty, 0);
}

TEST(Semidiscrete1D, NonUniformWeightsMatchGeneralisedQuantiles) {
  const auto y = sorted_normal(50, 4);
  std::vector<double> b(50);
  for (int j = 0; j < 50; ++j) b[j] = 1.0 + (j % 3);  // weights 1, 2, 3 repeating
  const double s = std::accumulate(b.begin(), b.end(), 0.0);
  for (auto& v : b) v /= s;
  auto o = accurate_options(6000);
  const SemidiscreteOT ot(o);
  const auto res = ot.fit(PointsView{y.data(), 50, 1}, b, quiet_ctx());
  EXPECT_LT(max_abs_diff(res.g, exact_1d(y, b)), 1e-2);
  const auto st = sdot_check(ot.map(PointsView{y.data(), 50, 1}, b, res), 4096, 100, 12, quiet_ctx());
  EXPECT_LT(st.tv, 0.01);
}

TEST(Semidiscrete1D, ZeroWeightPointIsMaskedNeverAssignedAndOthersMatchClosedForm) {
  // Masking a point must give the closed form of the remaining points.
  auto y = sorted_normal(21, 5);
  std::vector<double> b(21, 1.0 / 20);
  b[10] = 0;
  const SemidiscreteOT ot(accurate_options(3000));
  const auto res = ot.fit(PointsView{y.data(), 21, 1}, b, quiet_ctx());
  EXPECT_EQ(res.g[10], 0.0f);
  std::vector<float> y_rest;
  std::vector<double> b_rest;
  std::vector<float> g_rest;
  for (int j = 0; j < 21; ++j)
    if (j != 10) y_rest.push_back(y[j]), b_rest.push_back(b[j]), g_rest.push_back(res.g[j]);
  EXPECT_LT(max_abs_diff(g_rest, exact_1d(y_rest, b_rest)), 1e-2);
  const auto map = ot.map(PointsView{y.data(), 21, 1}, b, res);
  const Points x = draw_noise(9, Stream::Noise, 0, 5000, 1, quiet_ctx());
  for (int64_t j : sdot_assign(map, x, quiet_ctx())) ASSERT_NE(j, 10);
}

// Points on a centred regular simplex / square: g = 0 is optimal by symmetry of N(0, I).
TEST(SemidiscreteSymmetric, SquareAndTetrahedronGiveZeroPotentialHardAndSoft) {
  const std::vector<float> square = {1, 1, 1, -1, -1, 1, -1, -1};
  const std::vector<float> tetra = {1, 1, 1, 1, -1, -1, -1, 1, -1, -1, -1, 1};
  for (double eps : {0.0, 0.5}) {
    for (auto [pts, d] : {std::pair{&square, 2}, std::pair{&tetra, 3}}) {
      const int64_t n = static_cast<int64_t>(pts->size()) / d;
      auto o = accurate_options(1500);
      o.epsilon = eps;
      const SemidiscreteOT ot(o);
      const auto res = ot.fit(PointsView{pts->data(), n, d}, {}, quiet_ctx());
      for (float v : res.g) EXPECT_LT(std::abs(v), 0.01) << "eps " << eps << " d " << d;
      // And g = 0 itself has a marginal equal to b: chi2 ~ 0.
      const std::vector<float> zero(n, 0.0f);
      const auto m = mk(PointsView{pts->data(), n, d}, zero, {}, eps);
      const auto st = sdot_check(m, 2048, 20, 3, quiet_ctx());
      EXPECT_LT(std::abs(st.chi2), 0.01);
      EXPECT_LT(st.tv, 0.02);
    }
  }
}

// ---- the gradient and chi2 against naive double-precision loops ----

struct Naive {
  std::vector<double> col, col_sq;
  double f_sum = 0;
};

// s(x)_j = softmax_j(log b_j + (g_j - c(x, y_j) - beta [k != l_j]) / eps) or one-hot argmax, in double;
// per-class (beta = inf) restricts j to class k.
Naive naive_batch(PointsView x, std::span<const int64_t> xl, PointsView y, const std::vector<double>& b,
                  std::span<const int64_t> labels, double beta, const std::vector<double>& g, double eps, SdotCost cost) {
  Naive r;
  r.col.assign(y.n, 0.0);
  r.col_sq.assign(y.n, 0.0);
  for (int64_t i = 0; i < x.n; ++i) {
    std::vector<double> v(y.n, -kInf);
    for (int64_t j = 0; j < y.n; ++j) {
      if (b[j] <= 0) continue;
      double c = 0, dot = 0;
      for (int64_t k = 0; k < x.d; ++k) {
        const double t = static_cast<double>(x.row(i)[k]) - y.row(j)[k];
        c += t * t;
        dot += static_cast<double>(x.row(i)[k]) * y.row(j)[k];
      }
      c = cost == SdotCost::SqEuclideanHalf ? 0.5 * c : -dot;
      if (!labels.empty() && labels[j] != xl[i]) {
        if (std::isinf(beta)) continue;
        c += beta;
      }
      v[j] = g[j] - c;
    }
    if (eps <= 0) {
      const int64_t a = std::max_element(v.begin(), v.end()) - v.begin();
      r.col[a] += 1;
      r.col_sq[a] += 1;
      r.f_sum += -v[a];
    } else {
      double mx = -kInf;
      for (int64_t j = 0; j < y.n; ++j)
        if (v[j] > -kInf) mx = std::max(mx, std::log(b[j]) + v[j] / eps);
      double s = 0;
      for (int64_t j = 0; j < y.n; ++j)
        if (v[j] > -kInf) s += std::exp(std::log(b[j]) + v[j] / eps - mx);
      for (int64_t j = 0; j < y.n; ++j) {
        if (v[j] == -kInf) continue;
        const double p = std::exp(std::log(b[j]) + v[j] / eps - mx) / s;
        r.col[j] += p;
        r.col_sq[j] += p * p;
      }
      r.f_sum += -eps * (mx + std::log(s));
    }
  }
  return r;
}

struct Case {
  const char* name;
  double eps;
  SdotCost cost;
  bool labelled;
  double beta;
};

TEST(SemidiscreteGradient, BatchSumsAndLossMatchNaiveDoubleLoops) {
  const int64_t N = 37, d = 5, B = 64;
  Rng r(21);
  Points y(N, d);
  r.fill_normal(y.data);
  std::vector<double> b(N), g(N);
  for (auto& v : b) v = 0.2 + r.uniform();
  b[3] = 0;  // masked
  const double s = std::accumulate(b.begin(), b.end(), 0.0);
  for (auto& v : b) v /= s;
  for (auto& v : g) v = r.normal();
  std::vector<int64_t> labels(N);
  for (int64_t j = 0; j < N; ++j) labels[j] = j % 3;
  const Case cases[] = {{"hard", 0.0, SdotCost::SqEuclideanHalf, false, kInf},
                        {"soft", 0.7, SdotCost::SqEuclideanHalf, false, kInf},
                        {"soft small eps", 0.05, SdotCost::SqEuclideanHalf, false, kInf},
                        {"dot hard", 0.0, SdotCost::Dot, false, kInf},
                        {"dot soft", 1.3, SdotCost::Dot, false, kInf},
                        {"per-class hard", 0.0, SdotCost::SqEuclideanHalf, true, kInf},
                        {"per-class soft", 0.4, SdotCost::SqEuclideanHalf, true, kInf},
                        {"beta soft", 0.4, SdotCost::SqEuclideanHalf, true, 1.5},
                        {"beta hard", 0.0, SdotCost::SqEuclideanHalf, true, 0.8}};
  const Context ctx = quiet_ctx();
  ScoreOptions tiny;
  tiny.tile_rows = 7;
  tiny.tile_cols = 5;
  for (const Case& c : cases) {
    const std::span<const int64_t> lab = c.labelled ? std::span<const int64_t>(labels) : std::span<const int64_t>();
    const auto P = prepare(y, b, c.cost, lab, c.beta);
    const Points x = draw_noise(5, Stream::Noise, 0, B, d, ctx);
    const auto xl = sdot_detail::draw_classes(P, 5, Stream::Noise, 0, B);
    const Naive ref = naive_batch(x, xl, y, b, lab, c.beta, g, c.eps, c.cost);
    double shift = 0;  // the naive f excludes nothing: compare f_sum directly
    (void)shift;
    for (bool exact : {false, true}) {
      std::vector<double> col(N, 0.0), sq(exact ? N : 0, 0.0);
      const double f = accumulate_batch(P, x, xl, g, c.eps, col, sq, ctx, tiny);
      for (int64_t j = 0; j < N; ++j) {
        EXPECT_NEAR(col[j], ref.col[j], 2e-4 * B) << c.name << " exact " << exact << " j " << j;
        if (exact) {
          EXPECT_NEAR(sq[j], ref.col_sq[j], 2e-4 * B) << c.name << " j " << j;
        }
      }
      EXPECT_NEAR(f / B, ref.f_sum / B, 1e-3 * (1 + std::abs(ref.f_sum / B))) << c.name;
      EXPECT_EQ(col[3], 0.0) << c.name << ": masked point got mass";
      // The engine-side chi2 estimate from these sums equals the formula on the naive sums.
      if (exact) {
        EXPECT_NEAR(sdot_chi2_estimate(col, sq, b, B), sdot_chi2_estimate(ref.col, ref.col_sq, b, B), 2e-3) << c.name;
      }
    }
  }
}

TEST(SemidiscreteChi2, ZeroWhenEveryRowEqualsBAndUnbiasedForMultinomialCounts) {
  const std::vector<double> b = {0.1, 0.2, 0.3, 0.4};
  const int64_t B = 50;
  // Soft rows all equal to b: sum_i S_ij = B b_j, sum_i S_ij^2 = B b_j^2 -> exactly 0.
  std::vector<double> s1(4), s2(4);
  for (int j = 0; j < 4; ++j) s1[j] = B * b[j], s2[j] = B * b[j] * b[j];
  EXPECT_NEAR(sdot_chi2_estimate(s1, s2, b, B), 0.0, 1e-12);
  // Hard counts drawn from m: the average estimate is chi2(m || b) = sum m^2 / b - 1.
  const std::vector<double> m = {0.25, 0.25, 0.25, 0.25};
  double truth = -1;
  for (int j = 0; j < 4; ++j) truth += m[j] * m[j] / b[j];
  Rng r(8);
  double mean = 0;
  const int reps = 20000;
  for (int rep = 0; rep < reps; ++rep) {
    std::vector<double> c(4, 0.0);
    for (int i = 0; i < B; ++i) c[std::min<int64_t>(r.below(4), 3)] += 1;
    mean += sdot_chi2_estimate(c, c, b, B) / reps;
  }
  EXPECT_NEAR(mean, truth, 0.01);  // truth = 0.5208; the plug-in sum c^2/(B^2 b) - 1 would be ~0.02 higher
  EXPECT_THROW(sdot_chi2_estimate(s1, s2, b, 1), Error);
}

TEST(SemidiscreteChi2, StandardDeviationAndTvBoundHoldForMultinomialCounts) {
  // K points with non-uniform b; counts of M draws from m (= b, then perturbed). The empirical sd of
  // the chi2 estimate over many samples matches sdot_chi2_sd, and 0.5 sqrt(chi2 + 2 sd) bounds the
  // true TV(m, b) in at least 95% of samples.
  const int K = 300, M = 3000, reps = 1500;
  Rng r(31);
  std::vector<double> b(K);
  double sb = 0;
  for (auto& v : b) v = 0.5 + r.uniform(), sb += v;
  for (auto& v : b) v /= sb;
  for (double amp : {0.0, 0.25, 0.5}) {
    std::vector<double> m(K), cum(K);
    double sm = 0;
    for (int j = 0; j < K; ++j) m[j] = b[j] * std::max(0.0, 1 + amp * r.normal()), sm += m[j];
    double truth = -1, tv = 0;
    for (int j = 0; j < K; ++j) m[j] /= sm, truth += m[j] * m[j] / b[j], tv += 0.5 * std::abs(m[j] - b[j]);
    std::partial_sum(m.begin(), m.end(), cum.begin());
    double mean = 0, sq = 0, pred = 0;
    int covered = 0;
    for (int rep = 0; rep < reps; ++rep) {
      std::vector<double> c(K, 0.0);
      for (int i = 0; i < M; ++i)
        c[std::min<int64_t>(std::upper_bound(cum.begin(), cum.end(), r.uniform() * cum.back()) - cum.begin(), K - 1)] += 1;
      const double est = sdot_chi2_estimate(c, c, b, M), sd = sdot_chi2_sd(c, b, M);
      mean += est / reps, sq += est * est / reps, pred += sd / reps;
      covered += 0.5 * std::sqrt(std::max(0.0, est + 2 * sd)) >= tv;
    }
    const double sd_emp = std::sqrt(sq - mean * mean);
    EXPECT_NEAR(mean, truth, 3 * sd_emp / std::sqrt(reps)) << "amp " << amp;
    EXPECT_NEAR(pred / sd_emp, 1.0, 0.1) << "amp " << amp << ": predicted " << pred << " empirical " << sd_emp;
    EXPECT_GE(covered, 0.95 * reps) << "amp " << amp;
  }
  EXPECT_THROW(sdot_chi2_sd(std::vector<double>(3), std::vector<double>(3, 1.0 / 3), 2), Error);
}

TEST(SemidiscreteChi2, CheckMatchesNaiveFormulaOnTheSameDraws) {
  const int64_t N = 13, d = 3;
  Rng r(2);
  Points y(N, d);
  r.fill_normal(y.data);
  std::vector<float> g(N);
  for (auto& v : g) v = static_cast<float>(0.3 * r.normal());
  const std::vector<double> gd(g.begin(), g.end()), b(N, 1.0 / N);
  for (double eps : {0.0, 0.3}) {
    const auto m = mk(y, g, {}, eps);
    const auto st = sdot_check(m, 200, 1, 77, quiet_ctx());
    const Points x = draw_noise(77, Stream::Check, 0, 200, d, quiet_ctx());
    const Naive ref = naive_batch(x, {}, y, b, {}, kInf, gd, eps, SdotCost::SqEuclideanHalf);
    double chi2 = 0, tv = 0;
    for (int64_t j = 0; j < N; ++j) {
      chi2 += (ref.col[j] * ref.col[j] - ref.col_sq[j]) / b[j];
      tv += std::abs(ref.col[j] / 200 - b[j]);
    }
    chi2 = chi2 / (200.0 * 199.0) - 1;
    EXPECT_NEAR(st.chi2, chi2, 1e-4) << "eps " << eps;
    EXPECT_NEAR(st.tv, 0.5 * tv, 1e-5) << "eps " << eps;
    EXPECT_EQ(st.draws, 200);
    EXPECT_EQ(st.tv_floor.has_value(), eps == 0);
    EXPECT_EQ(st.tv_bound.has_value(), eps == 0);
    if (eps == 0) {
      EXPECT_NEAR(*st.chi2_sd, sdot_chi2_sd(ref.col, b, 200), 1e-12);
      EXPECT_DOUBLE_EQ(*st.tv_bound, std::min(1.0, 0.5 * std::sqrt(std::max(0.0, st.chi2 + 2 * *st.chi2_sd))));
    }
  }
}

// A potential far off sends almost every draw to one point: chi2 ~ N - 1, and the bound is clamped to
// TV <= 1 while the TV of the draws is about 1 - 1/N.
TEST(SemidiscreteChi2, TvBoundNeverExceedsOne) {
  const int64_t N = 13, d = 3;
  Rng r(5);
  Points y(N, d);
  r.fill_normal(y.data);
  std::vector<float> g(N, 0.0f);
  g[0] = 1000.0f;
  const auto st = sdot_check(mk(y, g, {}, 0.0), 200, 1, 3, quiet_ctx());
  EXPECT_NEAR(st.chi2, N - 1.0, 1e-9);
  EXPECT_NEAR(st.tv, 1.0 - 1.0 / N, 1e-12);
  EXPECT_EQ(*st.tv_bound, 1.0);
}

TEST(SemidiscreteChi2, TextSaysEstimateSdAndTarget) {
  EXPECT_EQ(sdot_chi2_text(-0.00268, 0.0015, 0.001), "chi2 = -0.0027 +- 0.0015 (unbiased estimate, can be < 0; target 0.001 met)");
  EXPECT_EQ(sdot_chi2_text(0.25, std::nullopt, 0.01), "chi2 = 0.25 (unbiased estimate; target 0.01 not met)");
  EXPECT_EQ(sdot_chi2_text(0.0083, 0.0012), "chi2 = 0.0083 +- 0.0012 (unbiased estimate)");
}

TEST(SemidiscreteFit, EpsilonToZeroIsContinuous) {
  const int64_t N = 8, d = 2;
  Rng r(31);
  Points y(N, d);
  r.fill_normal(y.data);
  auto o = accurate_options(3000);
  const auto hard = SemidiscreteOT(o).fit(y, {}, quiet_ctx());
  o.epsilon = 1e-3;
  const auto soft = SemidiscreteOT(o).fit(y, {}, quiet_ctx());
  o.epsilon = 0.3;
  const auto far = SemidiscreteOT(o).fit(y, {}, quiet_ctx());
  double close = 0, apart = 0;
  for (int64_t j = 0; j < N; ++j) {
    close = std::max(close, static_cast<double>(std::abs(hard.g[j] - soft.g[j])));
    apart = std::max(apart, static_cast<double>(std::abs(hard.g[j] - far.g[j])));
  }
  EXPECT_LT(close, 0.02);
  EXPECT_GT(apart, 3 * close);  // the comparison has power: a large eps really moves g
}

TEST(SemidiscreteFit, RelativeEpsilonIsStdOfReferenceCostTimesFactor) {
  const int64_t N = 30, d = 4;
  Rng r(6);
  Points y(N, d);
  r.fill_normal(y.data);
  for (auto& v : y.data) v = 2 * v + 1;
  auto o = accurate_options(10);
  o.epsilon = 0.05;
  o.relative_epsilon = true;
  const Context ctx = quiet_ctx(2, 4);
  const auto res = SemidiscreteOT(o).fit(y, {}, ctx);
  ASSERT_TRUE(res.reference_cost_std.has_value());
  EXPECT_DOUBLE_EQ(res.epsilon, 0.05 * *res.reference_cost_std);
  // Naive std of |x - y|^2 / 2 over the same 1024 reference draws and all 30 points.
  const double sd = sdot_reference_cost_std(y, {}, SdotCost::SqEuclideanHalf, stream_key(4, Stream::Reference), ctx);
  EXPECT_DOUBLE_EQ(*res.reference_cost_std, sd);
  const Points x = draw_noise(stream_key(4, Stream::Reference), Stream::CostScale, 0, 1024, d, ctx);
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < 1024; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double c = 0;
      for (int64_t k = 0; k < d; ++k) c += std::pow(static_cast<double>(x.row(i)[k]) - y.row(j)[k], 2);
      s += 0.5 * c, s2 += 0.25 * c * c;
    }
  const double M = 1024.0 * N;
  EXPECT_NEAR(sd, std::sqrt(s2 / M - (s / M) * (s / M)), 1e-4 * sd);
  EXPECT_GT(sd, 1.0);
}

TEST(SemidiscreteFit, PerClassPotentialsMatchEachClassClosedForm) {
  // 1-D, two interleaved classes: each class's potential is the 1-D closed form for its own points.
  const auto y = sorted_normal(40, 13);
  std::vector<int64_t> labels(40);
  for (int j = 0; j < 40; ++j) labels[j] = (j % 5 < 2) ? 0 : 1;  // 16 and 24 points
  const SemidiscreteOT ot(accurate_options(4000));
  const auto res = ot.fit(PointsView{y.data(), 40, 1}, {}, quiet_ctx(), labels);
  for (int64_t k = 0; k < 2; ++k) {
    std::vector<float> yk, gk;
    for (int j = 0; j < 40; ++j)
      if (labels[j] == k) yk.push_back(y[j]), gk.push_back(res.g[j]);
    const std::vector<double> bk(yk.size(), 1.0 / static_cast<double>(yk.size()));
    EXPECT_LT(max_abs_diff(gk, exact_1d(yk, bk)), 1e-2) << "class " << k;
  }
  // Noise of class k is matched only inside class k.
  const auto map = ot.map(PointsView{y.data(), 40, 1}, {}, res, labels);
  const Points x = draw_noise(1, Stream::Noise, 1, 500, 1, quiet_ctx());
  std::vector<int64_t> xl(500);
  for (int i = 0; i < 500; ++i) xl[i] = i % 2;
  const auto idx = sdot_assign(map, x, quiet_ctx(), xl);
  const auto smp = sdot_sample(mk(map.y, map.g, {}, 0.2, SdotCost::SqEuclideanHalf, labels), x, 3,
                               quiet_ctx(), xl);
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ(labels[idx[i]], xl[i]);
    EXPECT_EQ(labels[smp[i]], xl[i]);
  }
  const auto st = sdot_check(map, 4096, 50, 2, quiet_ctx());
  EXPECT_LT(st.tv, 0.02);
}

TEST(SemidiscreteFit, FiniteClassPenaltyInterpolatesUnconditionalAndPerClass) {
  const auto y = sorted_normal(12, 17);
  std::vector<int64_t> labels(12);
  for (int j = 0; j < 12; ++j) labels[j] = j % 2;
  auto o = accurate_options(2500);
  const PointsView yv{y.data(), 12, 1};
  const auto uncond = SemidiscreteOT(o).fit(yv, {}, quiet_ctx());
  const auto per_class = SemidiscreteOT(o).fit(yv, {}, quiet_ctx(), labels);
  o.class_penalty = 1e-4;
  const auto tiny = SemidiscreteOT(o).fit(yv, {}, quiet_ctx(), labels);
  o.class_penalty = 1e3;
  const auto huge = SemidiscreteOT(o).fit(yv, {}, quiet_ctx(), labels);
  double e_tiny = 0, e_huge = 0;
  for (int j = 0; j < 12; ++j) e_tiny = std::max(e_tiny, static_cast<double>(std::abs(tiny.g[j] - uncond.g[j])));
  // With a huge penalty each class is its own problem: compare within-class differences.
  for (int64_t k = 0; k < 2; ++k) {
    double mh = 0, mp = 0;
    for (int j = 0; j < 12; ++j)
      if (labels[j] == k) mh += huge.g[j] / 6.0, mp += per_class.g[j] / 6.0;
    for (int j = 0; j < 12; ++j)
      if (labels[j] == k) e_huge = std::max(e_huge, std::abs((huge.g[j] - mh) - (per_class.g[j] - mp)));
  }
  EXPECT_LT(e_tiny, 0.02);
  EXPECT_LT(e_huge, 0.02);
}

TEST(SemidiscreteFit, PolyakPriorWeighsTheWarmStartIntoTheAverage) {
  // Averaging does not change the iterates, so with prior weight W the result is the weighted mean of
  // the centred g0 (weight W) and the plain Polyak average of the same run (weight T).
  const auto y = sorted_normal(20, 9);
  std::vector<float> g0(20);
  Rng r(4);
  for (auto& v : g0) v = static_cast<float>(0.2 * r.normal() + 1.0);
  SemidiscreteOT::Options o;
  o.steps = 60;
  o.batch_size = 64;
  o.optimizer = SdotOptimizer::Adam;
  o.lr = 0.01;
  o.lr_final = 0.001;
  o.averaging = SdotAveraging::Polyak;
  o.polyak_start = 0;
  o.chi2_every = 0;
  const PointsView yv{y.data(), 20, 1};
  const auto plain = SemidiscreteOT(o).fit(yv, {}, quiet_ctx(), {}, g0);
  o.polyak_prior = 40;
  const auto resumed = SemidiscreteOT(o).fit(yv, {}, quiet_ctx(), {}, g0);
  double mean0 = 0;
  for (float v : g0) mean0 += v / 20.0;
  for (int j = 0; j < 20; ++j)
    EXPECT_NEAR(resumed.g[j], (40 * (g0[j] - mean0) + 60 * plain.g[j]) / 100.0, 1e-5) << j;
  // Without a warm start the prior has nothing to weigh.
  test::expect_error_contains([&] { SemidiscreteOT(o).fit(yv, {}, quiet_ctx()); }, "polyak_prior");
  o.polyak_prior = -1;
  test::expect_error_contains([&] { o.validate(); }, "polyak_prior");
}

TEST(SemidiscreteFit, WarmStartFromTheOptimumStaysThere) {
  const auto y = sorted_normal(30, 8);
  const std::vector<double> b(30, 1.0 / 30);
  const auto exact = exact_1d(y, b);
  std::vector<float> g0(exact.begin(), exact.end());
  for (auto& v : g0) v += 5.0f;  // a constant offset is irrelevant
  auto o = accurate_options(200);
  o.lr = 1e-4;
  o.lr_final = 1e-5;
  const auto warm = SemidiscreteOT(o).fit(PointsView{y.data(), 30, 1}, {}, quiet_ctx(), {}, g0);
  const auto cold = SemidiscreteOT(o).fit(PointsView{y.data(), 30, 1}, {}, quiet_ctx());
  EXPECT_LT(max_abs_diff(warm.g, exact), 5e-3);
  EXPECT_GT(max_abs_diff(cold.g, exact), 0.05);
}

TEST(SemidiscreteFit, StopsWhenChi2ReachesThresholdAndRecordsHistory) {
  const auto y = sorted_normal(10, 1);
  auto o = accurate_options(5000);
  o.optimizer = SdotOptimizer::Sgd;
  o.lr = 0.05;
  o.lr_final = 0.05;
  o.schedule = SdotSchedule::Constant;
  o.averaging = SdotAveraging::Ema;
  o.chi2_every = 100;
  o.chi2_repeats = 8;
  o.chi2_threshold = 0.02;
  o.log_every = 50;
  std::vector<int64_t> seen;
  o.on_check = [&](const SemidiscreteOT::Result& r) {
    seen.push_back(r.steps);
    EXPECT_EQ(r.g.size(), 10u);
    EXPECT_TRUE(r.chi2.has_value());
  };
  const auto res = SemidiscreteOT(o).fit(PointsView{y.data(), 10, 1}, {}, quiet_ctx());
  ASSERT_EQ(static_cast<int64_t>(seen.size()), res.steps / 100);
  EXPECT_EQ(seen.back(), res.steps);
  EXPECT_EQ(res.termination, Termination::Converged) << res.message;
  EXPECT_LT(res.steps, 5000);
  EXPECT_EQ(res.steps % 100, 0);
  ASSERT_TRUE(res.chi2.has_value());
  EXPECT_LE(*res.chi2, 0.02);
  ASSERT_FALSE(res.history.empty());
  EXPECT_EQ(res.history.back().step, res.steps);
  EXPECT_TRUE(res.history.back().chi2.has_value());
  EXPECT_FALSE(res.history.front().chi2.has_value());  // step 50: no check
  EXPECT_EQ(res.history.front().step, 50);
  for (size_t i = 1; i < res.history.size(); ++i) EXPECT_GE(res.history[i].seconds, res.history[i - 1].seconds);
}

TEST(SemidiscreteFit, TargetChi2StopsAtTheFirstCheckWhoseUpperBoundMeetsIt) {
  const auto y = sorted_normal(40, 2);
  SemidiscreteOT::Options o;  // automatic step sizes and init
  o.chi2_every = 25;
  o.chi2_repeats = 8;
  o.target_chi2 = 0.02;
  o.log_every = 25;
  const auto res = SemidiscreteOT(o).fit(PointsView{y.data(), 40, 1}, {}, quiet_ctx());
  EXPECT_EQ(res.termination, Termination::Converged) << res.message;
  EXPECT_EQ(res.stopped_by, "target_chi2");
  ASSERT_GE(res.history.size(), 2u);  // not met at the first check
  for (size_t i = 0; i < res.history.size(); ++i) {
    const auto& h = res.history[i];
    ASSERT_TRUE(h.chi2 && h.chi2_sd) << i;
    const double upper = *h.chi2 + 2 * *h.chi2_sd;
    if (i + 1 < res.history.size()) EXPECT_GT(upper, 0.02) << "met at step " << h.step << " but did not stop";
    else EXPECT_LE(upper, 0.02);
    // The sd is the U-statistic's (sdot_chi2_sd) and tv_bound is its TV bound.
    EXPECT_NEAR(*h.tv_bound, 0.5 * std::sqrt(std::max(0.0, upper)), 1e-12);
  }
  EXPECT_EQ(res.steps, res.history.back().step);
  // The stopped potential is what a fresh check measures (independent draws).
  const auto st = sdot_check(SemidiscreteOT(o).map(PointsView{y.data(), 40, 1}, {}, res), 4096, 64, 77, quiet_ctx());
  EXPECT_LT(st.chi2, 0.02 + 3 * *st.chi2_sd);
}

TEST(SemidiscreteFit, EpsilonPositiveTargetUsesTheSpreadOfTheBatchesAndTimeLimitStops) {
  const auto y = sorted_normal(20, 6);
  SemidiscreteOT::Options o;
  o.epsilon = 0.05;
  o.chi2_every = 20;
  o.chi2_repeats = 4;
  o.target_chi2 = 0.05;
  const auto res = SemidiscreteOT(o).fit(PointsView{y.data(), 20, 1}, {}, quiet_ctx());
  EXPECT_EQ(res.stopped_by, "target_chi2") << res.message;
  ASSERT_TRUE(res.history.back().chi2_sd.has_value());
  EXPECT_GT(*res.history.back().chi2_sd, 0.0);
  EXPECT_LE(*res.history.back().chi2 + 2 * *res.history.back().chi2_sd, 0.05);
  // A time limit already passed after the first step: one step, checked, stopped by the limit.
  o.time_limit = 1e-9;
  o.target_chi2 = 0;
  const auto t = SemidiscreteOT(o).fit(PointsView{y.data(), 20, 1}, {}, quiet_ctx());
  EXPECT_EQ(t.stopped_by, "time_limit");
  EXPECT_EQ(t.termination, Termination::MaxSteps);
  EXPECT_EQ(t.steps, 1);
  ASSERT_EQ(t.history.size(), 1u);
  EXPECT_TRUE(t.history[0].chi2.has_value());
  EXPECT_NE(t.message.find("time limit"), std::string::npos) << t.message;
}

// Default options (automatic step sizes, init and checks) on small versions of the rows of
// docs/semidiscrete.md: chi2 <= 0.01 on fresh draws within a bounded number of steps, whatever the scale.
void expect_defaults_converge(const Points& y, const char* what, const char* init) {
  SemidiscreteOT::Options o;
  o.steps = 3000;
  const SemidiscreteOT ot(o);
  const auto res = ot.fit(y, {}, quiet_ctx(2, 1));
  EXPECT_EQ(res.stopped_by, "target_chi2") << what << ": " << res.message;
  EXPECT_EQ(res.init, init) << what;
  const auto st = sdot_check(ot.map(y, {}, res), 1024, 64, 99, quiet_ctx(2));
  EXPECT_LE(st.chi2, 0.01) << what << " after " << res.steps << " steps; fit check " << *res.chi2 << " sd "
                           << *res.history.back().chi2_sd << " fresh sd " << *st.chi2_sd;
}

Points scaled(const Points& y, float c, int64_t n) {
  Points out(n, y.d);
  for (int64_t i = 0; i < n * y.d; ++i) out.data[i] = c * y.data[i];
  return out;
}

TEST(SemidiscreteDefaults, ConvergeOnDigitsAtScales01And10AndOnA2DMixture) {
  const Dataset digits = load_dataset("digits");
  expect_defaults_converge(scaled(digits.x, 0.1f, 400), "digits[:400] x 0.1", "zero");
  expect_defaults_converge(scaled(digits.x, 10.0f, 400), "digits[:400] x 10", "half-norm");
  DatasetOptions mix;
  mix.n = 1500;
  mix.seed = 1;
  expect_defaults_converge(load_dataset("8gaussians", mix).x, "8gaussians 1500", "multiscale");
}

TEST(SemidiscreteFit, SchedulesWarmupAndHugeStepSizeFailsNumerically) {
  const auto y = sorted_normal(6, 2);
  auto o = accurate_options(100);
  o.optimizer = SdotOptimizer::Sgd;
  o.schedule = SdotSchedule::Cosine;
  o.lr = 1.0;
  o.lr_final = 0.1;
  o.log_every = 1;
  o.epsilon = 0.01;
  o.warmup_delta = 0.5;
  o.warmup_steps = 50;
  auto res = SemidiscreteOT(o).fit(PointsView{y.data(), 6, 1}, {}, quiet_ctx());
  ASSERT_EQ(res.history.size(), 100u);
  EXPECT_DOUBLE_EQ(res.history[0].lr, 1.0);
  EXPECT_NEAR(res.history[99].lr, 0.1, 1e-12);
  EXPECT_NEAR(res.history[49].lr, 0.1 + 0.45 * (1 + std::cos(M_PI * 49 / 99)), 1e-12);
  EXPECT_DOUBLE_EQ(res.history[0].epsilon, 0.51);
  EXPECT_NEAR(res.history[25].epsilon, 0.01 + 0.5 * (1 - 25.0 / 50), 1e-12);
  EXPECT_DOUBLE_EQ(res.history[60].epsilon, 0.01);
  o.schedule = SdotSchedule::Constant;
  o.lr = 1e308;
  o.lr_final = 1e308;
  res = SemidiscreteOT(o).fit(PointsView{y.data(), 6, 1}, {}, quiet_ctx());
  EXPECT_EQ(res.termination, Termination::NumericalFailure);
  for (float v : res.g) EXPECT_TRUE(std::isfinite(v));
}

TEST(SemidiscreteFit, SameSeedSameBitsAndThreadCountDoesNotMatterAtEpsZero) {
  Rng r(4);
  Points y(300, 7);
  r.fill_normal(y.data);
  auto o = accurate_options(30);
  const auto a = SemidiscreteOT(o).fit(y, {}, quiet_ctx(2, 9));
  const auto b = SemidiscreteOT(o).fit(y, {}, quiet_ctx(2, 9));
  const auto c = SemidiscreteOT(o).fit(y, {}, quiet_ctx(1, 9));
  const auto d = SemidiscreteOT(o).fit(y, {}, quiet_ctx(2, 10));
  EXPECT_EQ(a.g, b.g);
  EXPECT_EQ(a.g, c.g);
  EXPECT_NE(a.g, d.g);
}

// ---- the maps ----

TEST(SemidiscreteMap, AssignTopkAndSampleMatchNaiveReferences) {
  const int64_t N = 40, d = 6, n = 300;
  Rng r(12);
  Points y(N, d), x(n, d);
  r.fill_normal(y.data);
  r.fill_normal(x.data);
  std::vector<float> g(N);
  for (auto& v : g) v = static_cast<float>(r.normal());
  std::vector<double> b(N, 1.0 / (N - 1));
  b[7] = 0;
  const std::vector<double> gd(g.begin(), g.end());
  for (SdotCost cost : {SdotCost::SqEuclideanHalf, SdotCost::Dot}) {
    const auto m = mk(y, g, b, 0.0, cost);
    const auto idx = sdot_assign(m, x, quiet_ctx());
    const auto top = sdot_topk(m, x, 3, quiet_ctx());
    for (int64_t i = 0; i < n; ++i) {
      std::vector<std::pair<double, int64_t>> v;
      for (int64_t j = 0; j < N; ++j) {
        if (b[j] <= 0) continue;
        double c = 0, dot = 0;
        for (int64_t k = 0; k < d; ++k) {
          c += std::pow(static_cast<double>(x.row(i)[k]) - y.row(j)[k], 2);
          dot += static_cast<double>(x.row(i)[k]) * y.row(j)[k];
        }
        v.push_back({gd[j] - (cost == SdotCost::Dot ? -dot : 0.5 * c), j});
      }
      std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first > b.first; });
      EXPECT_EQ(idx[i], v[0].second);
      for (int t = 0; t < 3; ++t) EXPECT_EQ(top[i * 3 + t], v[t].second);
    }
    // eps = 0 sampling is the assignment.
    EXPECT_EQ(sdot_sample(m, x, 5, quiet_ctx()), idx);
  }
  // Gumbel-max frequencies for one noise point repeated follow s(x); no thread dependence.
  const float x1v[6] = {0.3f, -0.2f, 0.1f, 0.5f, 0.0f, -0.4f};
  Points xs(20000, d);
  for (int64_t i = 0; i < xs.n; ++i) std::copy_n(x1v, d, xs.row(i));
  const auto m = mk(y, g, b, 1.5);
  const auto smp = sdot_sample(m, xs, 99, quiet_ctx(2));
  EXPECT_EQ(smp, sdot_sample(m, xs, 99, quiet_ctx(1)));
  const Naive ref = naive_batch(PointsView{x1v, 1, d}, {}, y, b, {}, kInf, gd, 1.5, SdotCost::SqEuclideanHalf);
  std::vector<double> freq(N, 0.0);
  for (int64_t j : smp) freq[j] += 1.0 / xs.n;
  for (int64_t j = 0; j < N; ++j) EXPECT_NEAR(freq[j], ref.col[j], 4 * std::sqrt(ref.col[j] / xs.n) + 1e-4) << j;
  EXPECT_EQ(freq[7], 0.0);
}

// ---- bad input ----

TEST(SemidiscreteErrors, BadDataWeightsLabelsAndNoiseNameTheArgument) {
  Points y(4, 2);
  Rng r(1);
  r.fill_normal(y.data);
  const SemidiscreteOT ot(accurate_options(5));
  const Context ctx = quiet_ctx();
  auto fit = [&](PointsView yy, std::vector<double> b, std::vector<int64_t> l = {}) {
    return [=, &ot, &ctx] { ot.fit(yy, b, ctx, l); };
  };
  Points bad = y;
  bad.data[3] = std::nanf("");
  test::expect_error_contains(fit(bad, {}), "data");
  bad.data[3] = std::numeric_limits<float>::infinity();
  test::expect_error_contains(fit(bad, {}), "data");
  test::expect_error_contains(fit(PointsView{nullptr, 0, 2}, {}), "at least one target point");
  test::expect_error_contains(fit(y, {0.5, 0.5, std::nan(""), 0.0}), "weights");
  test::expect_error_contains(fit(y, {0.5, 0.5, kInf, 0.0}), "weights");
  test::expect_error_contains(fit(y, {0.6, 0.6, -0.2, 0.0}), "non-negative");
  test::expect_error_contains(fit(y, {0.3, 0.3, 0.3, 0.3}), "summing to 1 within 1e-6");
  test::expect_error_contains(fit(y, {0.5, 0.5, 0.0}), "length N = 4");
  test::expect_error_contains(fit(y, {}, {0, 1, 0}), "labels");
  test::expect_error_contains(fit(y, {}, {0, 2, 0, 2}), "class 1 with total weight 0");
  test::expect_error_contains(fit(y, {0.5, 0.5, 0.0, 0.0}, {0, 0, 1, 1}), "class 1 with total weight 0");
  test::expect_error_contains(fit(y, {}, {0, -1, 0, 1}), "labels >= 0");
  test::expect_error_contains([&] { ot.fit(y, {}, ctx, {}, std::vector<float>{1, 2}); }, "initial potential");
  // Maps: noise of the wrong dimension, NaN noise, a potential of the wrong length, labels missing.
  const std::vector<float> g(4, 0.0f);
  const auto m = mk(y, g);
  Points x3(5, 3), x2(5, 2);
  test::expect_error_contains([&] { sdot_assign(m, x3, ctx); }, "the data's dimension d = 2");
  x2.data[0] = std::nanf("");
  test::expect_error_contains([&] { sdot_assign(m, x2, ctx); }, "noise");
  const std::vector<float> g3(3, 0.0f);
  test::expect_error_contains([&] { sdot_assign(mk(y, g3), x3, ctx); }, "potential");
  const std::vector<int64_t> lab = {0, 0, 1, 1};
  const auto mc = mk(y, g, {}, 0.0, SdotCost::SqEuclideanHalf, lab);
  x2.data[0] = 0;
  test::expect_error_contains([&] { sdot_assign(mc, x2, ctx); }, "noise labels");
  test::expect_error_contains([&] { sdot_assign(mc, x2, ctx, std::vector<int64_t>{0, 1, 2, 0, 0}); }, "[0, 2)");
  test::expect_error_contains([&] { sdot_topk(m, x2, 5, ctx); }, "k");
  test::expect_error_contains([&] { sdot_check(mk(y, g, {}, -1.0), 10, 1, 0, ctx); }, "epsilon");
}

TEST(SemidiscreteErrors, OptionsValidateNamesTheField) {
  auto bad = [](auto mutate, const char* field) {
    SemidiscreteOT::Options o;
    mutate(o);
    test::expect_error_contains([&] { o.validate(); }, field);
    test::expect_error_contains([&] { SemidiscreteOT{o}; }, field);
  };
  bad([](auto& o) { o.epsilon = -1; }, "epsilon");
  bad([](auto& o) { o.epsilon = std::nan(""); }, "epsilon");
  bad([](auto& o) { o.batch_size = 1; }, "batch_size");
  bad([](auto& o) { o.steps = 0; }, "steps");
  bad([](auto& o) { o.lr = 0; }, "lr");
  bad([](auto& o) { o.lr = 1, o.lr_final = 100; }, "lr_final");
  bad([](auto& o) { o.lr_final = -1; }, "lr_final");
  bad([](auto& o) { o.poly_gamma = -1; }, "poly_gamma");
  bad([](auto& o) { o.target_chi2 = -0.1; }, "target_chi2");
  bad([](auto& o) { o.time_limit = std::nan(""); }, "time_limit");
  bad([](auto& o) { o.adam_beta1 = 1; }, "adam_beta1");
  bad([](auto& o) { o.adam_beta2 = -0.1; }, "adam_beta2");
  bad([](auto& o) { o.adam_eps = 0; }, "adam_eps");
  bad([](auto& o) { o.ema_decay = 1; }, "ema_decay");
  bad([](auto& o) { o.polyak_start = 1; }, "polyak_start");
  bad([](auto& o) { o.warmup_delta = -1; }, "warmup_delta");
  bad([](auto& o) { o.warmup_steps = -1; }, "warmup_steps");
  bad([](auto& o) { o.chi2_every = -1; }, "chi2_every");
  bad([](auto& o) { o.chi2_repeats = 0; }, "chi2_repeats");
  bad([](auto& o) { o.chi2_threshold = -1; }, "chi2_threshold");
  bad([](auto& o) { o.log_every = 0; }, "log_every");
  bad([](auto& o) { o.class_penalty = 0; }, "class_penalty");
  bad([](auto& o) { o.engine.tile_rows = 0; }, "tile_rows");
  test::expect_error_contains([] { parse_sdot_optimizer("lbfgs"); }, "one of sgd, adam");
  test::expect_error_contains([] { parse_sdot_cost("l1"); }, "sqeuclidean_half");
  EXPECT_EQ(parse_sdot_schedule("cosine"), SdotSchedule::Cosine);
  EXPECT_EQ(parse_sdot_averaging("polyak"), SdotAveraging::Polyak);
  EXPECT_EQ(parse_sdot_averaging("poly"), SdotAveraging::Poly);
  EXPECT_EQ(parse_sdot_init("gaussian"), SdotInit::Gaussian);
  test::expect_error_contains([] { parse_sdot_init("ones", "--init"); }, "--init");
}


// ---- the CLI ----

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::json last_json_line(const std::string& out) {
  const auto pos = out.rfind('{');
  return nlohmann::json::parse(out.substr(pos));
}

TEST(SemidiscreteCli, FitCheckAndAssignEndToEnd) {
  test::TempDir dir;
  // The square: g = 0 is optimal, so the fitted potential is ~0 and the marginal is uniform.
  const std::vector<float> sq = {1, 1, 1, -1, -1, 1, -1, -1};
  write_npy(dir.file("y.npy"), sq, {4, 2});
  auto r = test::run_cli("sdot fit --data " + dir.file("y.npy") + " --steps 400 --batch 256 --optimizer adam --lr 0.01"
                         " --lr-final 0.0001 --chi2-every 100 --chi2-threshold 0 --target-chi2 0 --seed 3 --threads 1 --quiet --out " +
                         dir.file("g.npy") + " --record " + dir.file("run.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto summary = last_json_line(r.out);
  EXPECT_EQ(summary["termination"], "max_steps");
  EXPECT_EQ(summary["steps"], 400);
  const auto g = read_vector_npy(dir.file("g.npy"), "g");
  ASSERT_EQ(g.size(), 4u);
  EXPECT_NEAR(std::accumulate(g.begin(), g.end(), 0.0), 0.0, 1e-5);
  for (double v : g) EXPECT_LT(std::abs(v), 0.03);
  const auto rec = nlohmann::json::parse(read_text(dir.file("run.json")));
  EXPECT_EQ(rec["command"], "sdot fit");
  EXPECT_EQ(rec["options"]["optimizer"], "adam");
  ASSERT_EQ(rec["history"].size(), 4u);
  EXPECT_EQ(rec["history"][3]["step"], 400);
  EXPECT_TRUE(rec["history"][3]["chi2"].is_number());

  // --init half-norm starts from g0 = |y|^2 / 2: with a negligible step the result is that, centred.
  const std::vector<float> tri = {0, 0, 1, 0, 0, 2};
  write_npy(dir.file("t.npy"), tri, {3, 2});
  r = test::run_cli("sdot fit --data " + dir.file("t.npy") + " --init half-norm --steps 2 --lr 1e-9 --lr-final 0 "
                    "--averaging none --chi2-every 0 --quiet --out " + dir.file("gt.npy"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto gt = read_vector_npy(dir.file("gt.npy"), "gt");
  ASSERT_EQ(gt.size(), 3u);
  EXPECT_NEAR(gt[0], 0.0 - 2.5 / 3, 1e-5);
  EXPECT_NEAR(gt[1], 0.5 - 2.5 / 3, 1e-5);
  EXPECT_NEAR(gt[2], 2.0 - 2.5 / 3, 1e-5);

  r = test::run_cli("sdot check --data " + dir.file("y.npy") + " --potential " + dir.file("g.npy") +
                    " --draws 20000 --seed 1 --threads 1 -q");  // -q: no stderr summary after the JSON
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto st = last_json_line(r.out);
  for (const char* k : {"chi2", "tv", "min_ratio", "max_ratio", "empty"}) EXPECT_TRUE(st.contains(k)) << k;
  EXPECT_LT(std::abs(st["chi2"].get<double>()), 0.02);
  EXPECT_LT(st["tv"].get<double>(), 0.03);
  EXPECT_EQ(st["empty"], 0);
  EXPECT_EQ(st["draws"], 20480);

  // assign with fresh noise: the written noise and indices agree with the library.
  r = test::run_cli("sdot assign --data " + dir.file("y.npy") + " --potential " + dir.file("g.npy") +
                    " --n 500 --seed 4 --noise-out " + dir.file("x.npy") + " --out " + dir.file("idx.npy"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const Points x = read_points_npy(dir.file("x.npy"), "x");
  ASSERT_EQ(x.n, 500);
  ASSERT_EQ(x.d, 2);
  const std::vector<float> gf(g.begin(), g.end());
  EXPECT_EQ(read_int64_npy(dir.file("idx.npy"), "idx"), sdot_assign(mk(PointsView{sq.data(), 4, 2}, gf), x, quiet_ctx()));
  // eps > 0: seeded Gumbel-max sampling, the same for any thread count, different from the argmax.
  auto sample = [&](const std::string& threads, const std::string& out) {
    return test::run_cli("sdot assign --data " + dir.file("y.npy") + " --potential " + dir.file("g.npy") +
                         " --noise " + dir.file("x.npy") + " --epsilon 2 --seed 9 --threads " + threads + " --out " +
                         dir.file(out));
  };
  ASSERT_EQ(sample("1", "s1.npy").exit_code, 0);
  ASSERT_EQ(sample("2", "s2.npy").exit_code, 0);
  const auto s1 = read_int64_npy(dir.file("s1.npy"), "s");
  EXPECT_EQ(s1, read_int64_npy(dir.file("s2.npy"), "s"));
  EXPECT_NE(s1, read_int64_npy(dir.file("idx.npy"), "idx"));
}

TEST(SemidiscreteCli, UserErrorsExitTwoWithOneLine) {
  test::TempDir dir;
  const std::vector<float> sq = {1, 1, 1, -1, -1, 1, -1, -1};
  write_npy(dir.file("y.npy"), sq, {4, 2});
  const std::vector<double> bad_b = {0.3, 0.3, 0.3, 0.3}, g = {0, 0, 0, 0};
  write_npy(dir.file("b.npy"), bad_b, {4});
  write_npy(dir.file("g.npy"), g, {4});
  auto expect_user_error = [](const std::string& args, const std::string& fragment) {
    const auto r = test::run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(fragment), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  };
  const std::string y = " --data " + dir.file("y.npy");
  expect_user_error("sdot fit" + y + " --weights " + dir.file("b.npy") + " --out " + dir.file("o.npy"), "summing to 1");
  expect_user_error("sdot fit" + y + " --optimizer lbfgs --out " + dir.file("o.npy"), "one of sgd, adam");
  expect_user_error("sdot fit" + y + " --batch 1 --out " + dir.file("o.npy"), "invalid --batch = 1");
  expect_user_error("sdot fit" + y + " --epsilon -1 --out " + dir.file("o.npy"), "invalid --epsilon = -1");
  expect_user_error("sdot check" + y, "--potential");
  expect_user_error("sdot check" + y + " --potential " + dir.file("g.npy") + " --epsilon -2", "epsilon");
  expect_user_error("sdot assign" + y + " --potential " + dir.file("g.npy") + " --out " + dir.file("i.npy"),
                    "exactly one of --noise X.npy and --n M");
  expect_user_error("sdot assign" + y + " --potential " + dir.file("g.npy") + " --n 5 --noise " + dir.file("y.npy") +
                        " --out " + dir.file("i.npy"),
                    "exactly one of");
}


// The option table (otgen/ot/sdot_options.h): each entry reads and writes its own field only, its values
// survive the CLI's text form, and wrong types or texts are refused naming the argument.
TEST(SdotOptionTable, EachEntryOwnsOneFieldAndItsTextRoundTrips) {
  using Options = SemidiscreteOT::Options;
  const Options defaults;
  auto snapshot = [](const Options& o) {
    std::vector<std::string> v;
    for (const SdotOption& s : sdot_options()) v.push_back(sdot_option_text(s.get(o)));
    return v;
  };
  const auto before = snapshot(defaults);
  for (size_t k = 0; k < sdot_options().size(); ++k) {
    const SdotOption& spec = sdot_options()[k];
    EXPECT_EQ(find_sdot_option(spec.name), &spec);
    const SdotOptionValue d = spec.get(defaults);
    if (!std::holds_alternative<std::monostate>(d)) {
      EXPECT_EQ(parse_sdot_option_text(spec, sdot_option_text(d), spec.flag), d) << spec.name;
    }
    // A value other than the default, by kind; setting it changes this entry's field and no other.
    SdotOptionValue other;
    switch (spec.kind) {
      case SdotOptionKind::Flag: other = !std::get<bool>(d); break;
      case SdotOptionKind::Integer: other = int64_t{7}; break;
      case SdotOptionKind::Real: other = 0.375; break;
      case SdotOptionKind::Name: other = std::string(spec.name == "engine" ? "fp32" : "");
    }
    if (spec.kind == SdotOptionKind::Name && spec.name != "engine") {  // the first choice unlike the default
      std::string choices(spec.choices);
      for (size_t at = 0; at < choices.size();) {
        const size_t end = std::min(choices.find(", ", at), choices.size());
        if (choices.substr(at, end - at) != std::get<std::string>(d)) {
          other = choices.substr(at, end - at);
          break;
        }
        at = end + 2;
      }
    }
    Options o;
    spec.set(o, other, spec.name);
    auto after = snapshot(o);
    EXPECT_EQ(sdot_option_text(spec.get(o)), sdot_option_text(other)) << spec.name;
    after[k] = before[k];
    EXPECT_EQ(after, before) << spec.name << " changed another field";
  }
  Options o;
  test::expect_error_contains([&] { find_sdot_option("steps")->set(o, 2.5, "steps"); }, "invalid steps = 2.5 (a real)");
  test::expect_error_contains([&] { find_sdot_option("epsilon")->set(o, true, "--epsilon"); }, "invalid --epsilon = true");
  test::expect_error_contains([&] { find_sdot_option("cost")->set(o, std::string("l1"), "--cost"); },
                        "invalid --cost = l1: expected one of sqeuclidean_half, dot");
  find_sdot_option("epsilon")->set(o, int64_t{2}, "epsilon");  // an integer is a valid real
  EXPECT_EQ(o.epsilon, 2.0);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(parse_sdot_option_text(*find_sdot_option("lr"), "auto", "--lr")));
  test::expect_error_contains([&] { parse_sdot_option_text(*find_sdot_option("steps"), "auto", "--steps"); },
                        "invalid --steps = auto: expected an integer");
  test::expect_error_contains([&] { parse_sdot_option_text(*find_sdot_option("steps"), "12x", "--steps"); },
                        "invalid --steps = 12x");
  test::expect_error_contains([&] { parse_sdot_option_text(*find_sdot_option("lr"), "nan", "--lr"); },
                        "invalid --lr = nan: expected a number or 'auto'");
  EXPECT_EQ(std::get<double>(parse_sdot_option_text(*find_sdot_option("class_penalty"), "inf", "--class-penalty")),
            std::numeric_limits<double>::infinity());
  EXPECT_EQ(sdot_option_text(SdotOptionValue(1e-8)), "1e-08");
}

// log_every auto: min(100, chi2_every) when chi2_every is given and > 0, else 100.
TEST(SdotOptionTable, LogEveryAutoFollowsChi2Every) {
  SemidiscreteOT::Options o;
  EXPECT_EQ(o.history_every(), 100);
  o.chi2_every = 30;
  EXPECT_EQ(o.history_every(), 30);
  o.chi2_every = 0;
  EXPECT_EQ(o.history_every(), 100);
  o.chi2_every = 500;
  EXPECT_EQ(o.history_every(), 100);
  o.log_every = 7;
  EXPECT_EQ(o.history_every(), 7);
}

}  // namespace
}  // namespace otgen
