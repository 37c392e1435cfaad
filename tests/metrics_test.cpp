#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "otgen/metrics.h"
#include "otgen/rng.h"
#include "test_util.h"

namespace otgen {
namespace {

Points gaussian(int64_t n, int64_t d, uint64_t seed, double shift = 0.0, double scale = 1.0) {
  Points p(n, d);
  Rng rng(seed);
  for (auto& v : p.data) v = static_cast<float>(shift + scale * rng.normal());
  return p;
}

double dist(const float* a, const float* b, int64_t d, double power) {
  double s = 0;
  for (int64_t k = 0; k < d; ++k) s += (static_cast<double>(a[k]) - b[k]) * (static_cast<double>(a[k]) - b[k]);
  return power == 1 ? std::sqrt(s) : s;
}

// Naive double-precision references.
double naive_energy(const Points& x, const Points& y) {
  double xy = 0, xx = 0, yy = 0;
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t j = 0; j < y.n; ++j) xy += dist(x.row(i), y.row(j), x.d, 1);
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t j = 0; j < x.n; ++j)
      if (i != j) xx += dist(x.row(i), x.row(j), x.d, 1);
  for (int64_t i = 0; i < y.n; ++i)
    for (int64_t j = 0; j < y.n; ++j)
      if (i != j) yy += dist(y.row(i), y.row(j), x.d, 1);
  return 2 * xy / (x.n * y.n) - xx / (x.n * (x.n - 1.0)) - yy / (y.n * (y.n - 1.0));
}

double naive_mmd2(const Points& x, const Points& y, double alpha, bool biased) {
  auto k = [&](const float* a, const float* b) { return std::exp(-alpha * dist(a, b, x.d, 2)); };
  double xx = 0, yy = 0, xy = 0;
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t j = 0; j < x.n; ++j)
      if (biased || i != j) xx += k(x.row(i), x.row(j));
  for (int64_t i = 0; i < y.n; ++i)
    for (int64_t j = 0; j < y.n; ++j)
      if (biased || i != j) yy += k(y.row(i), y.row(j));
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t j = 0; j < y.n; ++j) xy += k(x.row(i), y.row(j));
  const double nx = biased ? x.n * double(x.n) : x.n * (x.n - 1.0), ny = biased ? y.n * double(y.n) : y.n * (y.n - 1.0);
  return xx / nx + yy / ny - 2 * xy / (x.n * double(y.n));
}

TEST(Metrics, EnergyDistanceMatchesNaiveLoop) {
  Points x = gaussian(57, 3, 1), y = gaussian(40, 3, 2, 0.5);
  EXPECT_NEAR(energy_distance(x, y), naive_energy(x, y), 1e-9 * 57 * 40);
  EXPECT_GT(energy_distance(x, y), 0.1);
}

TEST(Metrics, MmdBiasedAndUnbiasedMatchNaiveLoop) {
  // The engine computes kernel values in float32 (|x|^2 + |y|^2 - 2<x, y>): ~1e-7 error per entry.
  // A formula error (e.g. a wrong diagonal correction) shows at ~1/n = 0.03, far above 1e-6.
  Points x = gaussian(33, 5, 3), y = gaussian(29, 5, 4, 0.3);
  for (bool biased : {true, false}) {
    const double a[] = {0.5};
    EXPECT_NEAR(mmd2(x, y, a, biased), naive_mmd2(x, y, 0.5, biased), 1e-6) << biased;
  }
  const double both[] = {0.5, 2.0};
  EXPECT_NEAR(mmd2(x, y, both, false), naive_mmd2(x, y, 0.5, false) + naive_mmd2(x, y, 2.0, false), 1e-6);
}

TEST(Metrics, UnbiasedMmdOfSameDistributionIsNearZero) {
  Points x = gaussian(400, 2, 5), y = gaussian(400, 2, 6);
  const double a[] = {1.0};
  EXPECT_NEAR(mmd2(x, y, a, false), 0.0, 0.01);
  EXPECT_GT(mmd2(x, gaussian(400, 2, 7, 1.0), a, false), 0.1);
}

TEST(Metrics, Wasserstein1dMatchesCdfIntegralAndSortedPairs) {
  EXPECT_DOUBLE_EQ(wasserstein_1d({0.0}, {0.0, 1.0}, 1.0), 0.5);
  EXPECT_DOUBLE_EQ(wasserstein_1d({3, 1, 2}, {2, 4, 3}, 2.0), 1.0);  // sorted pairs differ by 1
  // W1 = integral |F(t) - G(t)| dt, an independent formula.
  Rng rng(9);
  std::vector<double> u(37), v(23);
  for (auto& t : u) t = rng.normal();
  for (auto& t : v) t = 1.5 * rng.normal() + 0.2;
  std::vector<double> all(u);
  all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  double cdf_integral = 0;
  for (size_t k = 0; k + 1 < all.size(); ++k) {
    const double t = all[k];
    const double F = std::count_if(u.begin(), u.end(), [&](double s) { return s <= t; }) / double(u.size());
    const double G = std::count_if(v.begin(), v.end(), [&](double s) { return s <= t; }) / double(v.size());
    cdf_integral += std::abs(F - G) * (all[k + 1] - all[k]);
  }
  EXPECT_NEAR(wasserstein_1d(u, v, 1.0), cdf_integral, 1e-12);
}

TEST(Metrics, SlicedW2OfAShiftIsMeanSquaredProjection) {
  Points x = gaussian(200, 4, 10), y = x;
  const float c[4] = {1.0f, -2.0f, 0.5f, 0.0f};
  for (int64_t i = 0; i < y.n; ++i)
    for (int k = 0; k < 4; ++k) y.row(i)[k] += c[k];
  // Each projected W2^2 is (theta . c)^2 exactly; E over directions = |c|^2 / d = 5.25 / 4.
  const double s = sliced_w2(x, y, 4000, 1);
  EXPECT_NEAR(s * s, 5.25 / 4, 0.05);
  EXPECT_NEAR(sliced_w2(x, x, 16, 1), 0.0, 1e-12);
}

TEST(Metrics, MeanMarginalW1OfAShift) {
  Points x = gaussian(100, 2, 11), y = x;
  for (int64_t i = 0; i < y.n; ++i) y.row(i)[0] += 2.0f, y.row(i)[1] -= 1.0f;
  EXPECT_NEAR(mean_marginal_w1(x, y), 1.5, 1e-6);
}

TEST(Metrics, FrechetOfAScaledShiftedCopyHasClosedForm) {
  // y = c x + b: Sy = c^2 Sx exactly, so FD = |b + (c - 1) mu_x|^2 + (1 - c)^2 tr(Sx).
  Points x = gaussian(300, 6, 12), y = x;
  const double c = 1.7;
  const double b[6] = {0.3, -0.2, 0.0, 1.0, 0.5, -0.4};
  std::vector<double> mu(6, 0.0), var(6, 0.0);
  for (int64_t i = 0; i < x.n; ++i)
    for (int k = 0; k < 6; ++k) {
      y.row(i)[k] = static_cast<float>(c * x.row(i)[k] + b[k]);
      mu[k] += x.row(i)[k] / 300.0;
    }
  for (int64_t i = 0; i < x.n; ++i)
    for (int k = 0; k < 6; ++k) var[k] += (x.row(i)[k] - mu[k]) * (x.row(i)[k] - mu[k]) / 299.0;
  double expect = 0;
  for (int k = 0; k < 6; ++k) expect += std::pow(b[k] + (c - 1) * mu[k], 2) + (1 - c) * (1 - c) * var[k];
  EXPECT_NEAR(frechet_distance(x, y), expect, 1e-4 * expect);
  EXPECT_NEAR(frechet_distance(x, x), 0.0, 1e-6);
}

TEST(Metrics, BadInputNamesTheArgument) {
  Points x = gaussian(10, 2, 1), y3 = gaussian(10, 3, 2), one = gaussian(1, 2, 3);
  test::expect_error_contains([&] { energy_distance(x, y3); }, "dimension");
  test::expect_error_contains([&] { energy_distance(x, one); }, "at least 2");
  const double bad[] = {-1.0};
  test::expect_error_contains([&] { mmd2(x, x, bad, true); }, "alphas");
  Points nan = x;
  nan.data[3] = std::nanf("");
  test::expect_error_contains([&] { frechet_distance(nan, x); }, "finite");
  test::expect_error_contains([&] { sliced_w2(x, x, 0); }, "projections");
}

// Brute force over all n! permutations, in double: min over sigma of (1/n) sum |x_i - y_sigma(i)|^2.
double brute_force_w2(const Points& x, const Points& y) {
  std::vector<int> sigma(x.n);
  std::iota(sigma.begin(), sigma.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    double s = 0;
    for (int64_t i = 0; i < x.n; ++i) s += dist(x.row(i), y.row(sigma[i]), x.d, 2);
    best = std::min(best, s);
  } while (std::next_permutation(sigma.begin(), sigma.end()));
  return std::sqrt(best / x.n);
}

TEST(Metrics, ExactW2MatchesBruteForcePermutationSearch) {
  for (int64_t n : {1, 2, 3, 5, 7})
    for (int64_t d : {1, 2, 3, 17}) {
      Points x = gaussian(n, d, 20 + n, 0.0), y = gaussian(n, d, 40 + d, 0.3, 1.5);
      const ExactW2 r = exact_w2(x, y);
      EXPECT_EQ(r.points, n);
      const double ref = brute_force_w2(x, y);
      // The assignment ranks permutations on a float32 cost matrix: agreement to ~1e-6 relative.
      EXPECT_NEAR(r.w2, ref, 1e-5 * (1 + ref)) << "n=" << n << " d=" << d;
    }
}

TEST(Metrics, ExactW2In1dIsTheSortedMatching) {
  // In 1-D the monotone (sorted) matching is optimal: W2^2 = (1/n) sum (x_(i) - y_(i))^2.
  const int64_t n = 300;
  Points x = gaussian(n, 1, 50), y = gaussian(n, 1, 51, 1.0, 2.0);
  std::vector<double> u(x.data.begin(), x.data.end()), v(y.data.begin(), y.data.end());
  std::sort(u.begin(), u.end());
  std::sort(v.begin(), v.end());
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (u[i] - v[i]) * (u[i] - v[i]);
  const double closed_form = std::sqrt(s / n);
  EXPECT_NEAR(exact_w2(x, y).w2, closed_form, 1e-5 * closed_form);
  EXPECT_NEAR(std::pow(exact_w2(x, y).w2, 2), wasserstein_1d(u, v, 2.0), 1e-4);
}

TEST(Metrics, ExactW2OfASetWithItselfIsZero) {
  Points x = gaussian(200, 5, 60);
  EXPECT_NEAR(exact_w2(x, x).w2, 0.0, 1e-12);
}

TEST(Metrics, ExactW2SubsamplesMinOfSizesAndMaxPointsDeterministically) {
  Points x = gaussian(500, 3, 61), y = gaussian(300, 3, 62, 0.5);
  const ExactW2 full = exact_w2(x, y);
  EXPECT_EQ(full.points, 300);
  const ExactW2 a = exact_w2(x, y, 100, 7), b = exact_w2(x, y, 100, 7), c = exact_w2(x, y, 100, 8);
  EXPECT_EQ(a.points, 100);
  EXPECT_EQ(a.w2, b.w2);  // same seed, same subsample, bit for bit
  EXPECT_NE(a.w2, c.w2);
  // y is shifted by 0.5 in each of 3 coordinates, so W2 >= |mean shift| ~ 0.87 up to sampling noise.
  EXPECT_GT(a.w2, 0.5);
}

// Naive double-precision improved precision/recall with Euclidean (not squared) distances.
std::pair<double, double> naive_precision_recall(const Points& real, const Points& fake, int64_t k) {
  auto radii = [&](const Points& a) {
    std::vector<double> r(a.n);
    for (int64_t i = 0; i < a.n; ++i) {
      std::vector<double> ds;
      for (int64_t j = 0; j < a.n; ++j)
        if (j != i) ds.push_back(std::sqrt(dist(a.row(i), a.row(j), a.d, 2)));
      std::sort(ds.begin(), ds.end());
      r[i] = ds[k - 1];
    }
    return r;
  };
  auto covered = [&](const Points& q, const Points& c, const std::vector<double>& r) {
    int64_t count = 0;
    for (int64_t j = 0; j < q.n; ++j) {
      bool in = false;
      for (int64_t i = 0; i < c.n; ++i) in = in || std::sqrt(dist(q.row(j), c.row(i), q.d, 2)) <= r[i];
      count += in;
    }
    return static_cast<double>(count) / q.n;
  };
  return {covered(fake, real, radii(real)), covered(real, fake, radii(fake))};
}

TEST(Metrics, PrecisionRecallMatchesNaiveDoubleLoop) {
  for (int64_t d : {1, 3, 17})
    for (int64_t k : {1, 3, 5}) {
      Points real = gaussian(83, d, 70 + d), fake = gaussian(61, d, 90 + k, 0.4, 1.3);
      const auto [p, r] = naive_precision_recall(real, fake, k);
      Context ctx;
      ctx.threads = 2;
      const PrecisionRecall pr = precision_recall(real, fake, k, ctx);
      EXPECT_DOUBLE_EQ(pr.precision, p) << "d=" << d << " k=" << k;
      EXPECT_DOUBLE_EQ(pr.recall, r) << "d=" << d << " k=" << k;
      ctx.threads = 1;
      const PrecisionRecall one = precision_recall(real, fake, k, ctx);
      EXPECT_EQ(one.precision, pr.precision);
      EXPECT_EQ(one.recall, pr.recall);
    }
}

TEST(Metrics, PrecisionRecallOfIdenticalSetsIsOne) {
  Points x = gaussian(150, 4, 80);
  const PrecisionRecall pr = precision_recall(x, x);
  EXPECT_EQ(pr.precision, 1.0);
  EXPECT_EQ(pr.recall, 1.0);
}

TEST(Metrics, PrecisionRecallOfFarApartSetsIsZero) {
  const PrecisionRecall pr = precision_recall(gaussian(100, 3, 81), gaussian(120, 3, 82, 1000.0));
  EXPECT_EQ(pr.precision, 0.0);
  EXPECT_EQ(pr.recall, 0.0);
}

TEST(Metrics, FakeSetCollapsedToOneRealPointHasFullPrecisionAndLowRecall) {
  // Mode collapse: every fake point is real point 17. The fake radii are 0 (duplicates), so only
  // real point 17 itself is recalled; it lies in its own real ball, so precision is 1.
  Points real = gaussian(200, 2, 83), fake(50, 2);
  for (int64_t i = 0; i < fake.n; ++i) std::copy(real.row(17), real.row(17) + 2, fake.row(i));
  const PrecisionRecall pr = precision_recall(real, fake, 3);
  EXPECT_EQ(pr.precision, 1.0);
  EXPECT_DOUBLE_EQ(pr.recall, 1.0 / 200);
}

TEST(Metrics, ExactW2AndPrecisionRecallBadInputNamesTheArgument) {
  Points x = gaussian(10, 2, 1), y3 = gaussian(10, 3, 2), three = gaussian(3, 2, 3);
  test::expect_error_contains([&] { exact_w2(x, x, 0); }, "max_points");
  test::expect_error_contains([&] { exact_w2(x, y3); }, "dimension");
  test::expect_error_contains([&] { precision_recall(x, x, 0); }, "k");
  test::expect_error_contains([&] { precision_recall(x, three, 3); }, "x_fake");
  test::expect_error_contains([&] { precision_recall(three, x, 3); }, "at least k + 1 = 4");
  test::expect_error_contains([&] { precision_recall(x, y3); }, "dimension");
  Points nan = x;
  nan.data[0] = std::nanf("");
  test::expect_error_contains([&] { precision_recall(nan, x); }, "x_real");
}

}  // namespace
}  // namespace otgen
