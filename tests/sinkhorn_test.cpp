#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "ot/cost_matrix.h"
#include "ot/fast_exp.h"
#include "otgen/ot/assignment.h"
#include "otgen/core/rng.h"
#include "otgen/ot/sinkhorn.h"
#include "test_util.h"

namespace otgen {
namespace {

using test::gaussian_points;

std::vector<double> random_weights(int64_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<double> w(n);
  double s = 0;
  for (double& v : w) v = 0.2 + r.uniform(), s += v;
  for (double& v : w) v /= s;
  return w;
}

std::vector<double> cost_matrix(const Points& x, const Points& y) {
  std::vector<double> c(x.n * y.n);
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t j = 0; j < y.n; ++j) {
      double s = 0;
      for (int64_t t = 0; t < x.d; ++t) s += std::pow(double(x.row(i)[t]) - y.row(j)[t], 2);
      c[i * y.n + j] = 0.5 * s;
    }
  return c;
}

// The plan P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps), in double.
std::vector<double> plan_of(const std::vector<double>& c, int64_t n, int64_t m, const std::vector<double>& a,
                            const std::vector<double>& b, const std::vector<double>& f, const std::vector<double>& g,
                            double eps) {
  std::vector<double> p(n * m);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) p[i * m + j] = a[i] * b[j] * std::exp((f[i] + g[j] - c[i * m + j]) / eps);
  return p;
}

struct Naive {
  std::vector<double> f, g;
};
// Textbook log-domain Sinkhorn in double with std::exp, run to a 1e-13 marginal error.
Naive naive_sinkhorn(const std::vector<double>& c, int64_t n, int64_t m, const std::vector<double>& a,
                     const std::vector<double>& b, double eps) {
  Naive r{std::vector<double>(n, 0.0), std::vector<double>(m, 0.0)};
  for (int it = 0; it < 100000; ++it) {
    for (int64_t i = 0; i < n; ++i) {
      double mx = -1e300;
      for (int64_t j = 0; j < m; ++j) mx = std::max(mx, std::log(b[j]) + (r.g[j] - c[i * m + j]) / eps);
      double s = 0;
      for (int64_t j = 0; j < m; ++j) s += std::exp(std::log(b[j]) + (r.g[j] - c[i * m + j]) / eps - mx);
      r.f[i] = -eps * (mx + std::log(s));
    }
    for (int64_t j = 0; j < m; ++j) {
      double mx = -1e300;
      for (int64_t i = 0; i < n; ++i) mx = std::max(mx, std::log(a[i]) + (r.f[i] - c[i * m + j]) / eps);
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += std::exp(std::log(a[i]) + (r.f[i] - c[i * m + j]) / eps - mx);
      r.g[j] = -eps * (mx + std::log(s));
    }
    const std::vector<double> p = plan_of(c, n, m, a, b, r.f, r.g, eps);
    double err = 0;
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < m; ++j) s += p[i * m + j];
      err += std::abs(s - a[i]);
    }
    if (err < 1e-13) break;
  }
  return r;
}

void centre(std::vector<double>& f, std::vector<double>& g) {
  const double gm = std::accumulate(g.begin(), g.end(), 0.0) / static_cast<double>(g.size());
  for (double& v : g) v -= gm;
  for (double& v : f) v += gm;
}

TEST(FastExp, MatchesStdExpToDoubleRounding) {
  for (double x = -700; x <= 700; x += 0.0137) {
    const double want = std::exp(x);
    EXPECT_NEAR(detail::fast_exp(x) / want, 1.0, 1e-14) << "x = " << x;
  }
  EXPECT_EQ(detail::fast_exp(-800.0), 0.0);
  EXPECT_EQ(detail::fast_exp(-std::numeric_limits<double>::infinity()), 0.0);
}

TEST(Sinkhorn, MatchesNaiveDoubleSinkhornDenseAndOnline) {
  const int64_t n = 7, m = 5;
  const Points x = gaussian_points(n, 3, 1), y = gaussian_points(m, 3, 2, 1.5f, 0.3f);
  const std::vector<double> a = random_weights(n, 3), b = random_weights(m, 4), c = cost_matrix(x, y);
  const double eps = 0.5;
  Naive ref = naive_sinkhorn(c, n, m, a, b, eps);
  centre(ref.f, ref.g);
  const std::vector<double> p = plan_of(c, n, m, a, b, ref.f, ref.g, eps);
  double ref_cost = 0;
  for (int64_t k = 0; k < n * m; ++k) ref_cost += p[k] * c[k];
  for (SinkhornMode mode : {SinkhornMode::Dense, SinkhornMode::Online}) {
    SinkhornOptions opt;
    opt.epsilon = eps;
    opt.mode = mode;
    opt.tol = mode == SinkhornMode::Dense ? 1e-11 : 1e-6;
    const SinkhornResult r = sinkhorn(x, y, a, b, Context{1}, opt);
    ASSERT_EQ(r.termination, Termination::Converged) << r.message;
    EXPECT_EQ(r.dense, mode == SinkhornMode::Dense);
    // Dense stores <x_i, y_j> in float32 (relative rounding 6e-8, i.e. ~1e-7 / eps here); the online
    // engine also returns float32 log-sum-exps.
    const double tol = mode == SinkhornMode::Dense ? 2e-6 : 1e-5;
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(r.f[i], ref.f[i], tol * (1 + std::abs(ref.f[i])));
    for (int64_t j = 0; j < m; ++j) EXPECT_NEAR(r.g[j], ref.g[j], tol * (1 + std::abs(ref.g[j])));
    EXPECT_NEAR(r.transport_cost, ref_cost, tol * ref_cost);
    double dual = 0;
    for (int64_t i = 0; i < n; ++i) dual += a[i] * ref.f[i];
    for (int64_t j = 0; j < m; ++j) dual += b[j] * ref.g[j];
    EXPECT_NEAR(r.dual_objective, dual, tol * (1 + std::abs(dual)));
  }
}

TEST(Sinkhorn, MarginalsWithinTolAndErrorReportedHonestly) {
  const int64_t n = 300, m = 200;
  const Points x = gaussian_points(n, 10, 5), y = gaussian_points(m, 10, 6, 0.7f, 0.5f);
  const std::vector<double> a = random_weights(n, 7), b = random_weights(m, 8), c = cost_matrix(x, y);
  for (SinkhornMode mode : {SinkhornMode::Dense, SinkhornMode::Online}) {
    SinkhornOptions opt;
    opt.epsilon = 0.05;
    opt.relative_epsilon = true;
    opt.tol = 1e-4;
    opt.check_every = 3;
    opt.mode = mode;
    const SinkhornResult r = sinkhorn(x, y, a, b, Context{}, opt);
    ASSERT_EQ(r.termination, Termination::Converged) << r.message;
    const std::vector<double> p = plan_of(c, n, m, a, b, r.f, r.g, r.epsilon);
    double row_err = 0, col_err = 0;
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < m; ++j) s += p[i * m + j];
      row_err += std::abs(s - a[i]);
    }
    for (int64_t j = 0; j < m; ++j) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += p[i * m + j];
      col_err += std::abs(s - b[j]);
    }
    EXPECT_LE(row_err, opt.tol * 1.01);
    EXPECT_NEAR(row_err, r.marginal_error, 1e-3 * opt.tol + 1e-6);
    EXPECT_LE(col_err, 1e-5) << "columns are exact after the g update";
    double cost = 0;
    for (int64_t k = 0; k < n * m; ++k) cost += p[k] * c[k];
    EXPECT_NEAR(r.transport_cost, cost, 1e-5 * cost);
  }
}

TEST(Sinkhorn, RelativeEpsilonIsEpsilonTimesStdOfCost) {
  const Points x = gaussian_points(40, 4, 9), y = gaussian_points(30, 4, 10, 2.0f);
  const std::vector<double> c = cost_matrix(x, y);
  double mean = 0, var = 0;
  for (double v : c) mean += v;
  mean /= c.size();
  for (double v : c) var += (v - mean) * (v - mean);
  const double sd = std::sqrt(var / c.size());
  SinkhornOptions opt;
  opt.epsilon = 0.1;
  opt.relative_epsilon = true;
  const SinkhornResult r = sinkhorn(x, y, {}, {}, Context{}, opt);
  EXPECT_NEAR(r.epsilon, 0.1 * sd, 1e-5 * sd);
  EXPECT_NEAR(cost_stddev(x, y, Context{}), sd, 1e-5 * sd);
}

// Naive two-pass mean and std of a cost matrix (double).
std::pair<double, double> naive_moments(const std::vector<double>& c) {
  double mean = 0, var = 0;
  for (double v : c) mean += v;
  mean /= static_cast<double>(c.size());
  for (double v : c) var += (v - mean) * (v - mean);
  return {mean, std::sqrt(var / static_cast<double>(c.size()))};
}

// The one std(C) routine: the naive reference for both costs, and the same bits from engine row
// blocks (1100 x 4096 is two blocks), from the stored scores, and on 1 or 2 threads.
TEST(CostMoments, MatchNaiveAndGiveTheSameBitsWhateverTheBlocksOrThreads) {
  const Points x = gaussian_points(1100, 3, 21), y = gaussian_points(4096, 3, 22, 1.5f, 0.5f);
  const auto [mean, sd] = naive_moments(cost_matrix(x, y));
  Context one, two;
  one.threads = 1, two.threads = 2;
  const detail::CostMoments blocks = detail::cost_moments(x, y, one, {});
  EXPECT_NEAR(blocks.mean, mean, 1e-6 * mean);
  EXPECT_NEAR(blocks.stddev, sd, 1e-5 * sd);
  std::vector<float> s(static_cast<size_t>(x.n * y.n));
  score_matrix(ScoreProblem{x, y, {}}, s, one);
  const detail::CostMoments stored = detail::cost_moments(x, y, two, {}, true, s);
  EXPECT_EQ(stored.mean, blocks.mean);
  EXPECT_EQ(stored.stddev, blocks.stddev);
  EXPECT_EQ(detail::cost_moments(x, y, two, {}).stddev, blocks.stddev);

  std::vector<double> dot(s.size());
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t j = 0; j < y.n; ++j) {
      double v = 0;
      for (int64_t t = 0; t < x.d; ++t) v += double(x.row(i)[t]) * y.row(j)[t];
      dot[i * y.n + j] = -v;
    }
  const auto [dmean, dsd] = naive_moments(dot);
  const detail::CostMoments d = detail::cost_moments(x, y, two, {}, false);
  EXPECT_NEAR(d.mean, dmean, 1e-5 * dsd);
  EXPECT_NEAR(d.stddev, dsd, 1e-5 * dsd);
}

TEST(Sinkhorn, EpsilonScalingAndNoScalingAgree) {
  const Points x = gaussian_points(100, 8, 11), y = gaussian_points(100, 8, 12, 1.0f, 1.0f);
  SinkhornOptions opt;
  opt.epsilon = 0.1;
  opt.relative_epsilon = true;
  opt.tol = 1e-6;
  opt.eps_scaling = true;
  const SinkhornResult s = sinkhorn(x, y, {}, {}, Context{}, opt);
  opt.eps_scaling = false;
  const SinkhornResult u = sinkhorn(x, y, {}, {}, Context{}, opt);
  ASSERT_EQ(s.termination, Termination::Converged) << s.message;
  ASSERT_EQ(u.termination, Termination::Converged) << u.message;
  EXPECT_GT(s.stages, 1);
  EXPECT_EQ(u.stages, 1);
  EXPECT_NEAR(s.transport_cost, u.transport_cost, 1e-6 * u.transport_cost);
  for (int64_t j = 0; j < 100; ++j) EXPECT_NEAR(s.g[j], u.g[j], 1e-3 * s.epsilon);
  // A warm start from the solution converges at once.
  const SinkhornResult w = sinkhorn(x, y, {}, {}, Context{}, opt, &u);
  EXPECT_EQ(w.termination, Termination::Converged);
  EXPECT_LE(w.iterations, 2);
}

TEST(Sinkhorn, MaxIterationsReportsMaxStepsWithTheMeasuredError) {
  const Points x = gaussian_points(100, 5, 13), y = gaussian_points(100, 5, 14, 1.0f, 2.0f);
  SinkhornOptions opt;
  opt.epsilon = 0.001;
  opt.relative_epsilon = true;
  opt.eps_scaling = false;
  opt.max_iterations = 3;
  const SinkhornResult r = sinkhorn(x, y, {}, {}, Context{}, opt);
  EXPECT_EQ(r.termination, Termination::MaxSteps);
  EXPECT_EQ(r.iterations, 3);
  EXPECT_GT(r.marginal_error, opt.tol);
}

TEST(Sinkhorn, NonFiniteEpsilonArithmeticReturnsLastFiniteIterate) {
  // 1e-310 passes validation (positive, finite) but 1/eps overflows: the first update is non-finite.
  const Points x = gaussian_points(10, 2, 15), y = gaussian_points(10, 2, 16);
  SinkhornOptions opt;
  opt.epsilon = 1e-310;
  opt.eps_scaling = false;
  const SinkhornResult r = sinkhorn(x, y, {}, {}, Context{}, opt);
  EXPECT_EQ(r.termination, Termination::NumericalFailure);
  for (double v : r.f) EXPECT_TRUE(std::isfinite(v));
  for (double v : r.g) EXPECT_TRUE(std::isfinite(v));
}

TEST(Sinkhorn, ZeroWeightTargetsGetNoMass) {
  const Points x = gaussian_points(20, 3, 17), y = gaussian_points(10, 3, 18);
  std::vector<double> b(10, 0.2);
  for (int j = 0; j < 10; j += 2) b[j] = 0;
  SinkhornOptions opt;
  opt.epsilon = 0.2;
  const SinkhornResult r = sinkhorn(x, y, {}, b, Context{}, opt);
  ASSERT_EQ(r.termination, Termination::Converged);
  const std::vector<int64_t> pairs = sinkhorn_pairs(x, y, b, r, 3, false, Context{});
  for (int64_t j : pairs) EXPECT_EQ(j % 2, 1);
}

TEST(SinkhornPairs, RowDrawsFollowThePlanRows) {
  // Three distinct source points, each repeated 2000 times; the frequency of partner j among the
  // copies of point k must match P_kj / a_k.
  const int64_t reps = 2000;
  const Points base = gaussian_points(3, 2, 19), y = gaussian_points(4, 2, 20);
  Points x(3 * reps, 2);
  for (int64_t i = 0; i < 3 * reps; ++i) std::copy(base.row(i % 3), base.row(i % 3) + 2, x.row(i));
  SinkhornOptions opt;
  opt.epsilon = 0.5;
  opt.tol = 1e-9;
  const SinkhornResult r = sinkhorn(x, y, {}, {}, Context{}, opt);
  const std::vector<double> c = cost_matrix(x, y);
  const std::vector<double> a(3 * reps, 1.0 / (3 * reps)), b(4, 0.25);
  const std::vector<int64_t> pairs = sinkhorn_pairs(x, y, {}, r, 77, false, Context{});
  for (int64_t k = 0; k < 3; ++k) {
    std::vector<double> cnt(4, 0), p(4);
    for (int64_t i = k; i < 3 * reps; i += 3) cnt[pairs[i]] += 1;
    double s = 0;
    for (int64_t j = 0; j < 4; ++j) s += p[j] = b[j] * std::exp((r.f[k] + r.g[j] - c[k * 4 + j]) / r.epsilon);
    for (int64_t j = 0; j < 4; ++j) {
      const double q = p[j] / s, sd = std::sqrt(q * (1 - q) / reps);
      EXPECT_NEAR(cnt[j] / reps, q, 4 * sd + 1e-3) << "point " << k << ", partner " << j;
    }
  }
}

TEST(SinkhornPairs, RoundingGivesAPermutationNearTheExactOneAtSmallEpsilon) {
  const int64_t n = 120;
  const Points x = gaussian_points(n, 6, 21), y = gaussian_points(n, 6, 22, 1.0f, 0.5f);
  SinkhornOptions opt;
  opt.epsilon = 0.005;
  opt.relative_epsilon = true;
  opt.tol = 1e-4;
  const SinkhornResult r = sinkhorn(x, y, {}, {}, Context{}, opt);
  const std::vector<int64_t> perm = sinkhorn_pairs(x, y, {}, r, 5, true, Context{});
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t k = 0; k < n; ++k) ASSERT_EQ(sorted[k], k);
  const double exact = exact_assignment(x, y, Context{}).cost;
  EXPECT_GE(matching_cost(x, y, perm), exact * (1 - 1e-9));
  EXPECT_LE(matching_cost(x, y, perm), exact * 1.1);
  // Far better than an arbitrary permutation, and every uncontested row draw is kept.
  std::vector<int64_t> identity(n);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_LT(matching_cost(x, y, perm), 0.8 * matching_cost(x, y, identity));
  const std::vector<int64_t> draws = sinkhorn_pairs(x, y, {}, r, 5, false, Context{});
  std::vector<int> hits(n, 0);
  for (int64_t j : draws) ++hits[j];
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i)
    if (hits[draws[i]] == 1) {
      EXPECT_EQ(perm[i], draws[i]);
      ++kept;
    }
  EXPECT_GT(kept, n / 4);
  EXPECT_THROW(sinkhorn_pairs(x, Points(gaussian_points(n - 1, 6, 3)), {}, r, 5, true, Context{}), Error);
}

TEST(Sinkhorn, SameThreadsGiveSameBitsOnAThreadedProblem) {
  // 1100 x 1000 > 2^20 entries: the dense sweeps run on 2 threads.
  const Points x = gaussian_points(1100, 3, 31), y = gaussian_points(1000, 3, 32, 1.0f, 0.5f);
  SinkhornOptions opt;
  opt.epsilon = 0.1;
  opt.relative_epsilon = true;
  opt.tol = 1e-3;
  const SinkhornResult a = sinkhorn(x, y, {}, {}, Context{2}, opt), b = sinkhorn(x, y, {}, {}, Context{2}, opt);
  ASSERT_EQ(a.termination, Termination::Converged);
  EXPECT_EQ(a.iterations, b.iterations);
  EXPECT_EQ(a.f, b.f);
  EXPECT_EQ(a.g, b.g);
  EXPECT_EQ(a.transport_cost, b.transport_cost);
}

TEST(Sinkhorn, BadInputIsRejected) {
  const Points x = gaussian_points(5, 2, 1), y = gaussian_points(4, 2, 2), z(0, 2);
  test::expect_error_contains([&] { sinkhorn(z, y, {}, {}, Context{}); }, "at least one point");
  test::expect_error_contains([&] { sinkhorn(x, gaussian_points(4, 3, 1), {}, {}, Context{}); }, "dimension");
  SinkhornOptions opt;
  opt.epsilon = 0;
  test::expect_error_contains([&] { sinkhorn(x, y, {}, {}, Context{}, opt); }, "epsilon");
  opt.epsilon = -1;
  test::expect_error_contains([&] { sinkhorn(x, y, {}, {}, Context{}, opt); }, "epsilon");
  opt = {};
  opt.tol = 0;
  test::expect_error_contains([&] { sinkhorn(x, y, {}, {}, Context{}, opt); }, "tol");
  opt = {};
  opt.max_iterations = 0;
  test::expect_error_contains([&] { sinkhorn(x, y, {}, {}, Context{}, opt); }, "max_iterations");
  Points bad = x;
  bad.data[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(sinkhorn(bad, y, {}, {}, Context{}), Error);
  const std::vector<double> w{0.5, 0.5, 0.5, 0.5};
  test::expect_error_contains([&] { sinkhorn(x, y, {}, w, Context{}); }, "summing to 1");
}

}  // namespace
}  // namespace otgen
