#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <vector>

#include "otgen/metrics/evaluation.h"
#include "otgen/metrics/metrics.h"
#include "otgen/core/rng.h"
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


// ---- Frechet distance in a PCA basis, bootstrap intervals, the eval driver ----------------------

// A random orthogonal d x d matrix (columns r_k), Gram-Schmidt in double on seeded Gaussians.
std::vector<std::vector<double>> random_rotation(int d, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<double>> r(d, std::vector<double>(d));
  for (int k = 0; k < d; ++k) {
    for (auto& v : r[k]) v = rng.normal();
    for (int j = 0; j < k; ++j) {
      double dot = 0;
      for (int i = 0; i < d; ++i) dot += r[k][i] * r[j][i];
      for (int i = 0; i < d; ++i) r[k][i] -= dot * r[j][i];
    }
    double norm = 0;
    for (double v : r[k]) norm += v * v;
    for (auto& v : r[k]) v /= std::sqrt(norm);
  }
  return r;  // r[k] is the k-th column
}

// n draws of N(mu, R diag(var) R^T).
Points rotated_gaussian(int64_t n, const std::vector<std::vector<double>>& r, const std::vector<double>& mu,
                        const std::vector<double>& var, uint64_t seed) {
  const int d = static_cast<int>(mu.size());
  Points p(n, d);
  Rng rng(seed);
  std::vector<double> z(d);
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < d; ++k) z[k] = std::sqrt(var[k]) * rng.normal();
    for (int c = 0; c < d; ++c) {
      double v = mu[c];
      for (int k = 0; k < d; ++k) v += r[k][c] * z[k];
      p.row(i)[c] = static_cast<float>(v);
    }
  }
  return p;
}

// Naive double covariance (1/(n-1)).
std::vector<double> naive_cov(const Points& x) {
  const int64_t d = x.d;
  std::vector<double> mu(d, 0.0), cov(d * d, 0.0);
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t c = 0; c < d; ++c) mu[c] += x.row(i)[c] / double(x.n);
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = 0; b < d; ++b) cov[a * d + b] += (x.row(i)[a] - mu[a]) * (x.row(i)[b] - mu[b]) / (x.n - 1.0);
  return cov;
}

TEST(MetricsPca, BasisIsOrthonormalEigenvectorsOfTheNaiveCovarianceByDecreasingVariance) {
  const int d = 7;
  const auto r = random_rotation(d, 1);
  const Points t = rotated_gaussian(3000, r, std::vector<double>(d, 0.5), {9, 6, 4, 2.5, 1, 0.5, 0.1}, 2);
  const std::vector<double> cov = naive_cov(t);
  double trace = 0;
  for (int c = 0; c < d; ++c) trace += cov[c * d + c];
  for (int64_t k : {1, 3, 7}) {
    const PcaBasis b = pca_basis(t, k);
    ASSERT_EQ(b.dim, k);
    EXPECT_NEAR(b.total_variance, trace, 1e-9 * trace);
    double kept = 0;
    for (int64_t a = 0; a < k; ++a) {
      const double* v = b.components.data() + a * d;
      if (a > 0) {
        EXPECT_GT(b.variances[a - 1], b.variances[a]);
      }
      kept += b.variances[a];
      // C v = lambda v against the naive covariance; unit norm; orthogonal to the others.
      double residual = 0, norm = 0;
      for (int i = 0; i < d; ++i) {
        double cv = 0;
        for (int j = 0; j < d; ++j) cv += cov[i * d + j] * v[j];
        residual += (cv - b.variances[a] * v[i]) * (cv - b.variances[a] * v[i]);
        norm += v[i] * v[i];
      }
      EXPECT_LT(std::sqrt(residual), 1e-9 * trace);
      EXPECT_NEAR(norm, 1.0, 1e-12);
      for (int64_t c = 0; c < a; ++c) {
        double dot = 0;
        for (int i = 0; i < d; ++i) dot += v[i] * b.components[c * d + i];
        EXPECT_NEAR(dot, 0.0, 1e-12);
      }
      const double* big = std::max_element(v, v + d, [](double p, double q) { return std::abs(p) < std::abs(q); });
      EXPECT_GT(*big, 0.0);  // the sign convention
    }
    if (k == d) {
      EXPECT_NEAR(kept, trace, 1e-9 * trace);
    }
  }
  EXPECT_EQ(pca_basis(t).dim, d);                       // default min(d, 64, N - 1)
  EXPECT_EQ(default_pca_dim(784, 60000), 64);
  EXPECT_EQ(default_pca_dim(784, 10), 9);
}

TEST(MetricsPca, FullBasisGivesTheFrechetDistanceAndIdenticalSetsGiveZero) {
  // FD is invariant under rotations and shifts, so in a complete basis it is the plain FD.
  const Points t = gaussian(400, 5, 3, 0.0, 2.0), x = gaussian(300, 5, 4, 0.2), y = gaussian(250, 5, 5, -0.1, 1.4);
  const PcaBasis full = pca_basis(t, 5);
  const double fd = frechet_distance(x, y);
  EXPECT_NEAR(frechet_distance(x, y, full), fd, 1e-9 * fd);
  EXPECT_NEAR(frechet_distance(x, x, pca_basis(t, 2)), 0.0, 1e-10);
}

TEST(MetricsPca, FrechetInAKnownBasisMatchesTheGaussianClosedForm) {
  // Training set +-a_k r_k: mean 0, covariance sum_k 2 a_k^2 r_k r_k^T / (N - 1) exactly, so the top
  // 3 directions are r_1, r_2, r_3. x ~ N(mu_x, R Dx R^T), y ~ N(mu_y, R Dy R^T) share R, so in that
  // subspace FD = sum_{k <= 3} (r_k . (mu_x - mu_y))^2 + (sqrt(dx_k) - sqrt(dy_k))^2.
  const int d = 6;
  const auto r = random_rotation(d, 7);
  Points t(2 * d, d);
  for (int k = 0; k < d; ++k)
    for (int c = 0; c < d; ++c) {
      t.row(2 * k)[c] = static_cast<float>((6.0 - k) * r[k][c]);
      t.row(2 * k + 1)[c] = static_cast<float>(-(6.0 - k) * r[k][c]);
    }
  const PcaBasis b = pca_basis(t, 3);
  for (int k = 0; k < 3; ++k) {
    double dot = 0;
    for (int c = 0; c < d; ++c) dot += b.components[k * d + c] * r[k][c];
    EXPECT_NEAR(std::abs(dot), 1.0, 1e-6);
  }
  const std::vector<double> mx{0.5, -0.3, 0.2, 1.0, 0.0, 0.4}, my{0.0, 0.2, -0.4, 0.0, 2.0, 0.4};
  const std::vector<double> dx{1.0, 4.0, 0.25, 2.0, 1.0, 3.0}, dy{2.25, 1.0, 1.0, 0.5, 4.0, 1.0};
  const int64_t n = 200000;
  const Points x = rotated_gaussian(n, r, mx, dx, 8), y = rotated_gaussian(n, r, my, dy, 9);
  double closed = 0, sd = 0;
  for (int k = 0; k < 3; ++k) {
    double dm = 0;
    for (int c = 0; c < d; ++c) dm += r[k][c] * (mx[c] - my[c]);
    const double ds = std::sqrt(dx[k]) - std::sqrt(dy[k]);
    closed += dm * dm + ds * ds;
    // Delta method: the projected mean difference has variance (dx + dy) / n, sqrt of a sample
    // variance has variance ~ var / (2 n).
    sd += 2 * std::abs(dm) * std::sqrt((dx[k] + dy[k]) / n) + 2 * std::abs(ds) * std::sqrt((dx[k] + dy[k]) / (2.0 * n));
  }
  // 5 sd plus the O(k^2 / n) bias of the off-diagonal sampling noise (~1e-4 here).
  EXPECT_NEAR(frechet_distance(x, y, b), closed, 5 * sd + 9.0 / n) << "sd " << sd;
  // The same closed form for the full FD (all 6 directions).
  double full = 0, full_sd = 0;
  for (int k = 0; k < d; ++k) {
    double dm = 0;
    for (int c = 0; c < d; ++c) dm += r[k][c] * (mx[c] - my[c]);
    const double ds = std::sqrt(dx[k]) - std::sqrt(dy[k]);
    full += dm * dm + ds * ds;
    full_sd += 2 * std::abs(dm) * std::sqrt((dx[k] + dy[k]) / n) + 2 * std::abs(ds) * std::sqrt((dx[k] + dy[k]) / (2.0 * n));
  }
  EXPECT_NEAR(frechet_distance(x, y), full, 5 * full_sd + 36.0 / n) << "sd " << full_sd;
}

TEST(MetricsPca, BadInputNamesTheArgument) {
  const Points t = gaussian(10, 3, 1), x = gaussian(10, 3, 2), x4 = gaussian(10, 4, 3);
  test::expect_error_contains([&] { pca_basis(t, 0); }, "invalid dim = 0");
  test::expect_error_contains([&] { pca_basis(t, 4); }, "[1, 3]");
  test::expect_error_contains([&] { pca_basis(gaussian(3, 5, 1), 3); }, "N - 1");  // rank <= N - 1 = 2
  test::expect_error_contains([&] { pca_basis(gaussian(1, 3, 1)); }, "train");
  Points nan = t;
  nan.data[4] = std::nanf("");
  test::expect_error_contains([&] { pca_basis(nan); }, "train");
  const PcaBasis b = pca_basis(t);
  test::expect_error_contains([&] { frechet_distance(x4, x, b); }, "invalid x = dimension 4");
  test::expect_error_contains([&] { frechet_distance(x, x4, b); }, "invalid y = dimension 4");
}

TEST(MetricsMmd, MedianHeuristicIsTheMedianNonzeroDistanceOfEvenlySpacedRows) {
  Points x = gaussian(9, 2, 1), y = gaussian(7, 2, 2, 3.0);
  std::vector<double> all;
  std::vector<const float*> rows;
  for (int64_t i = 0; i < x.n; ++i) rows.push_back(x.row(i));
  for (int64_t i = 0; i < y.n; ++i) rows.push_back(y.row(i));
  rows.push_back(x.row(0));  // not in the heuristic's pool: checks that duplicates would be skipped below
  for (size_t i = 0; i + 1 < rows.size(); ++i)
    for (size_t j = i + 1; j + 1 < rows.size(); ++j) all.push_back(std::sqrt(dist(rows[i], rows[j], 2, 2)));
  std::sort(all.begin(), all.end());
  EXPECT_DOUBLE_EQ(median_distance(x, y), all[all.size() / 2]);
  // Rows i * n / per_side: with per_side = 3 of 9 rows, rows 0, 3, 6 of x and 0, 2, 4 of y.
  std::vector<double> sub;
  const std::vector<const float*> pick{x.row(0), x.row(3), x.row(6), y.row(0), y.row(2), y.row(4)};
  for (size_t i = 0; i < pick.size(); ++i)
    for (size_t j = i + 1; j < pick.size(); ++j) sub.push_back(std::sqrt(dist(pick[i], pick[j], 2, 2)));
  std::sort(sub.begin(), sub.end());
  EXPECT_DOUBLE_EQ(median_distance(x, y, 3), sub[sub.size() / 2]);
  // Zero distances (duplicates, collapsed samples) are skipped; all-zero gives 1.
  Points same(5, 2);
  EXPECT_EQ(median_distance(same, same), 1.0);
  Points collapsed(100, 2);
  for (int64_t i = 0; i < collapsed.n; ++i) collapsed.row(i)[0] = 1.0f;
  EXPECT_DOUBLE_EQ(median_distance(collapsed, same), 1.0);  // every nonzero distance is 1
}

TEST(MetricsMmd, PerBandwidthValuesMatchNaiveLoopsAndSumToTheMultiKernelMmd) {
  Points x = gaussian(41, 3, 11), y = gaussian(37, 3, 12, 0.4);
  const double alphas[] = {0.2, 1.0, 3.0};
  const std::vector<double> per = mmd2_per_bandwidth(x, y, alphas);
  ASSERT_EQ(per.size(), 3u);
  double total = 0;
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(per[a], naive_mmd2(x, y, alphas[a], false), 1e-6);
    total += per[a];
  }
  EXPECT_NEAR(mmd2(x, y, alphas, false), total, 1e-12);
}

TEST(MetricsBootstrap, IndicesAreSeededWithReplacementAndNeverASingleRow) {
  const auto a = bootstrap_indices(50, 3, 7, 0);
  EXPECT_EQ(a, bootstrap_indices(50, 3, 7, 0));
  EXPECT_NE(a, bootstrap_indices(50, 4, 7, 0));
  EXPECT_NE(a, bootstrap_indices(50, 3, 8, 0));
  EXPECT_NE(a, bootstrap_indices(50, 3, 7, 1));
  EXPECT_TRUE(std::all_of(a.begin(), a.end(), [](int64_t i) { return i >= 0 && i < 50; }));
  const std::set<int64_t> distinct(a.begin(), a.end());
  EXPECT_LT(distinct.size(), 50u);  // with replacement: P(all distinct) = 50! / 50^50 ~ 3e-21
  EXPECT_GT(distinct.size(), 20u);  // ~ (1 - 1/e) 50 = 32 expected
  for (int64_t r = 0; r < 200; ++r) {  // n = 2: half the raw draws repeat one row; those are redrawn
    const auto two = bootstrap_indices(2, 1, r, 0);
    EXPECT_NE(two[0], two[1]) << r;
  }
  test::expect_error_contains([] { bootstrap_indices(1, 0, 0, 0); }, "at least 2");
}

TEST(MetricsBootstrap, PercentileIntervalInterpolatesOrderStatistics) {
  std::vector<double> v(101);
  for (int i = 0; i <= 100; ++i) v[i] = 100 - i;  // unsorted on purpose: 0..100
  const Interval ci = percentile_interval(v, 0.9);
  EXPECT_NEAR(ci.lo, 5.0, 1e-12);
  EXPECT_NEAR(ci.hi, 95.0, 1e-12);
  // Four values 0, 10, 20, 30: the 2.5% quantile sits at position 0.075 -> 0.75; 97.5% at 2.925 -> 29.25.
  const Interval four = percentile_interval({30, 0, 20, 10}, 0.95);
  EXPECT_NEAR(four.lo, 0.75, 1e-12);
  EXPECT_NEAR(four.hi, 29.25, 1e-12);
  test::expect_error_contains([] { percentile_interval({}, 0.95); }, "values");
  test::expect_error_contains([] { percentile_interval({1.0}, 1.0); }, "level");
}

// Naive energy distance over pairs of distinct source rows: the bootstrap's definition.
double naive_energy_excluding_copies(const Points& x, const std::vector<int64_t>& ix, const Points& y,
                                     const std::vector<int64_t>& iy) {
  auto within = [](const Points& p, const std::vector<int64_t>& idx) {
    double s = 0, pairs = 0;
    for (size_t a = 0; a < idx.size(); ++a)
      for (size_t b = 0; b < idx.size(); ++b)
        if (idx[a] != idx[b]) s += std::sqrt(dist(p.row(idx[a]), p.row(idx[b]), p.d, 2)), pairs += 1;
    return s / pairs;
  };
  double xy = 0;
  for (int64_t a : ix)
    for (int64_t b : iy) xy += std::sqrt(dist(x.row(a), y.row(b), x.d, 2));
  return 2 * xy / (double(ix.size()) * iy.size()) - within(x, ix) - within(y, iy);
}

double naive_mmd_excluding_copies(const Points& x, const std::vector<int64_t>& ix, const Points& y,
                                  const std::vector<int64_t>& iy, double alpha) {
  auto k = [&](const float* a, const float* b) { return std::exp(-alpha * dist(a, b, x.d, 2)); };
  auto within = [&](const Points& p, const std::vector<int64_t>& idx) {
    double s = 0, pairs = 0;
    for (size_t a = 0; a < idx.size(); ++a)
      for (size_t b = 0; b < idx.size(); ++b)
        if (idx[a] != idx[b]) s += k(p.row(idx[a]), p.row(idx[b])), pairs += 1;
    return s / pairs;
  };
  double xy = 0;
  for (int64_t a : ix)
    for (int64_t b : iy) xy += k(x.row(a), y.row(b));
  return within(x, ix) + within(y, iy) - 2 * xy / (double(ix.size()) * iy.size());
}

TEST(MetricsEvaluate, BootstrapReplicatesAreTheMetricsOfTheResamplesWithoutPairsOfCopies) {
  const Points x = gaussian(60, 3, 21), y = gaussian(45, 3, 22, 0.5, 1.3), t = gaussian(80, 3, 23);
  EvalOptions o;
  o.metrics = {"energy", "mmd", "fd", "fd-pca", "sw2"};
  o.pca_dim = 2;
  o.bootstrap = 8;
  o.keep_replicates = true;
  Context ctx;
  ctx.seed = 5;
  const auto j = evaluate(x, y, t, o, ctx);
  const PcaBasis b = pca_basis(t, 2);
  const double h = j["mmd_median_distance"].get<double>();
  EXPECT_DOUBLE_EQ(h, median_distance(x, y));
  for (int64_t r = 0; r < o.bootstrap; ++r) {
    const auto ix = bootstrap_indices(x.n, 5, r, 0), iy = bootstrap_indices(y.n, 5, r, 1);
    Points xs(x.n, 3), ys(y.n, 3);
    for (int64_t i = 0; i < x.n; ++i) std::copy(x.row(ix[i]), x.row(ix[i]) + 3, xs.row(i));
    for (int64_t i = 0; i < y.n; ++i) std::copy(y.row(iy[i]), y.row(iy[i]) + 3, ys.row(i));
    const auto& rep = j["bootstrap_replicates"];
    // The engine's distances are float32 (~1e-7 relative each); a wrong count of pairs shows at ~1/n = 0.02.
    EXPECT_NEAR(rep["energy"][r].get<double>(), naive_energy_excluding_copies(x, ix, y, iy), 1e-6) << r;
    double mmd = 0;
    for (double s : {0.5, 1.0, 2.0}) mmd += naive_mmd_excluding_copies(x, ix, y, iy, 1.0 / (2 * s * s * h * h));
    EXPECT_NEAR(rep["mmd2"][r].get<double>(), mmd, 1e-6) << r;
    EXPECT_DOUBLE_EQ(rep["frechet"][r].get<double>(), frechet_distance(xs, ys));
    EXPECT_DOUBLE_EQ(rep["frechet_pca"][r].get<double>(), frechet_distance(xs, ys, b));  // the training basis, fixed
    EXPECT_DOUBLE_EQ(rep["sw2"][r].get<double>(), sliced_w2(xs, ys, o.projections, 5));  // the same directions
  }
  for (const char* key : {"energy", "mmd2", "frechet", "frechet_pca", "sw2"}) {
    std::vector<double> v = j["bootstrap_replicates"][key].get<std::vector<double>>();
    const Interval ci = percentile_interval(v);
    EXPECT_EQ(j[std::string(key) + "_ci"][0].get<double>(), ci.lo) << key;
    EXPECT_EQ(j[std::string(key) + "_ci"][1].get<double>(), ci.hi) << key;
  }
}

TEST(MetricsEvaluate, IntervalsContainTheEstimateAndRepeatWithTheSeed) {
  // Distinct distributions: every metric is well away from 0, where the plug-in biases are small
  // next to the sampling spread, so the 95% percentile interval holds the point estimate.
  const Points x = gaussian(400, 4, 31), y = gaussian(300, 4, 32, 0.4, 1.5), t = gaussian(500, 4, 33, 0.0, 1.2);
  EvalOptions o;
  o.metrics = {"energy", "mmd", "sw2", "w1", "fd", "fd-pca", "w2", "prd"};
  o.bootstrap = 100;
  o.projections = 64;
  o.max_points = 100;
  Context ctx;
  ctx.seed = 1;
  const auto a = evaluate(x, y, t, o, ctx), again = evaluate(x, y, t, o, ctx);
  EXPECT_EQ(a.dump(), again.dump());  // bit for bit
  ctx.seed = 2;
  const auto other = evaluate(x, y, t, o, ctx);
  for (const char* key : {"energy", "mmd2", "sw2", "mean_marginal_w1", "frechet", "frechet_pca"}) {
    const std::string ci = std::string(key) + "_ci";
    ASSERT_TRUE(a.contains(ci)) << key;
    EXPECT_LT(a[ci][0].get<double>(), a[key].get<double>()) << key;
    EXPECT_GT(a[ci][1].get<double>(), a[key].get<double>()) << key;
    EXPECT_NE(a[ci], other[ci]) << key;
  }
  EXPECT_EQ(a["energy"], other["energy"]);  // the point estimate does not depend on the seed
  EXPECT_FALSE(a.contains("w2_ci"));
  EXPECT_FALSE(a.contains("precision_ci"));
  EXPECT_EQ(a["bootstrap"]["no_interval"], nlohmann::json({"w2", "prd"}));
  EXPECT_EQ(a["bootstrap"]["replicates"], 100);
  EXPECT_EQ(a["frechet_pca_dim"], 4);  // default min(d, 64, N - 1)
  EXPECT_NEAR(a["frechet_pca"].get<double>(), a["frechet"].get<double>(), 1e-9);  // complete basis
}

TEST(MetricsEvaluate, IdenticalSetsGiveNearZero) {
  const Points x = gaussian(300, 3, 41), t = gaussian(300, 3, 42);
  EvalOptions o;
  o.metrics = {"energy", "mmd", "sw2", "w1", "fd", "fd-pca", "w2", "prd"};
  o.pca_dim = 2;
  const auto j = evaluate(x, x, t, o);
  // energy and MMD: the cross term keeps the diagonal the within terms drop, -O(1/n) (here ~ -0.01).
  EXPECT_NEAR(j["energy"].get<double>(), 0.0, 0.02);
  EXPECT_NEAR(j["mmd2"].get<double>(), 0.0, 0.03);
  EXPECT_NEAR(j["sw2"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(j["mean_marginal_w1"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(j["frechet"].get<double>(), 0.0, 1e-10);
  EXPECT_NEAR(j["frechet_pca"].get<double>(), 0.0, 1e-10);
  EXPECT_NEAR(j["w2"].get<double>(), 0.0, 1e-12);
  EXPECT_EQ(j["precision"].get<double>(), 1.0);
  EXPECT_EQ(j["recall"].get<double>(), 1.0);
}

TEST(MetricsEvaluate, BadOptionsAndInputsNameTheArgumentInEitherSpelling) {
  const Points x = gaussian(20, 3, 1), t = gaussian(20, 3, 2), t4 = gaussian(20, 4, 3);
  auto expect = [&](EvalOptions o, PointsView train, const std::string& python, const std::string& cli) {
    test::expect_error_contains([&] { evaluate(x, x, train, o); }, python);
    o.cli_names = true;
    test::expect_error_contains([&] { evaluate(x, x, train, o); }, cli);
  };
  EvalOptions pca;
  pca.metrics = {"fd-pca"};
  expect(pca, {}, "invalid pca_data = None", "invalid --pca-data = (not given)");
  expect(pca, t4, "invalid pca_data = points of dimension 4", "invalid --pca-data = points of dimension 4");
  expect(pca, gaussian(1, 3, 1), "invalid pca_data = 1 points", "invalid --pca-data = 1 points");
  EvalOptions zero = pca;
  zero.pca_dim = 0;
  expect(zero, t, "invalid pca_dim = 0", "invalid --pca-dim = 0");
  EvalOptions big = pca;
  big.pca_dim = 4;
  expect(big, t, "invalid pca_dim = 4", "invalid --pca-dim = 4");
  EvalOptions boot;
  boot.bootstrap = -1;
  expect(boot, {}, "invalid bootstrap = -1", "invalid --bootstrap = -1");
  EvalOptions unused;
  expect(unused, t, "invalid pca_data", "invalid --pca-data");  // a training set without fd-pca
  EvalOptions names;
  names.metrics = {"energy", "fid"};
  expect(names, {}, "invalid metrics = 'fid'", "invalid --metrics = 'fid'");
  EvalOptions mp;
  mp.max_points = 0;
  expect(mp, {}, "invalid max_points = 0", "invalid --max-points = 0");
  Points nan = x;
  nan.data[5] = std::nanf("");
  test::expect_error_contains([&] { evaluate(nan, x, {}, EvalOptions{}); }, "samples");
  test::expect_error_contains([&] { evaluate(x, gaussian(20, 2, 1), {}, EvalOptions{}); }, "invalid reference");
  // Values whose float32 squared distances overflow: a clear error for energy/mmd, not NaN; fd is float64.
  Points huge = gaussian(20, 3, 4, 0.0, 1e30);
  test::expect_error_contains([&] { evaluate(huge, x, {}, EvalOptions{}); }, "rescale the data");
  EvalOptions fd;
  fd.metrics = {"fd"};
  EXPECT_TRUE(std::isfinite(evaluate(huge, x, {}, fd)["frechet"].get<double>()));
}

}  // namespace
}  // namespace otgen
