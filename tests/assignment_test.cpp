#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "otgen/ot/assignment.h"
#include "otgen/core/rng.h"
#include "test_util.h"

namespace otgen {
namespace {

using test::gaussian_points;

bool is_permutation(const std::vector<int64_t>& p, int64_t n) {
  if (static_cast<int64_t>(p.size()) != n) return false;
  std::vector<char> seen(n, 0);
  for (int64_t v : p) {
    if (v < 0 || v >= n || seen[v]) return false;
    seen[v] = 1;
  }
  return true;
}

// Brute force over all permutations, in double.
double brute_force_min(const std::vector<double>& c, int64_t n) {
  std::vector<int64_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += c[i * n + p[i]];
    best = std::min(best, s);
  } while (std::next_permutation(p.begin(), p.end()));
  return best;
}

TEST(JonkerVolgenant, MatchesBruteForceOnRandomMatricesUpToEight) {
  Rng r(11);
  for (int64_t n = 1; n <= 8; ++n)
    for (int rep = 0; rep < (n <= 6 ? 20 : 4); ++rep) {
      std::vector<double> c(n * n);
      for (double& v : c) v = r.uniform() * 10 - 3;
      const AssignmentResult res = solve_assignment(std::span<const double>(c), n);
      ASSERT_TRUE(is_permutation(res.permutation, n));
      EXPECT_NEAR(res.cost, brute_force_min(c, n), 1e-9) << "n = " << n;
      std::vector<float> cf(c.begin(), c.end());
      std::vector<double> cd(cf.begin(), cf.end());
      const AssignmentResult rf = solve_assignment(std::span<const float>(cf), n);
      EXPECT_NEAR(rf.cost, brute_force_min(cd, n), 1e-4) << "float, n = " << n;
    }
}

TEST(JonkerVolgenant, PointsMatchBruteForceWithHalfSquaredCost) {
  for (int64_t n = 1; n <= 7; ++n) {
    const Points x = gaussian_points(n, 3, 100 + n), y = gaussian_points(n, 3, 200 + n, 2.0f);
    std::vector<double> c(n * n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t t = 0; t < 3; ++t) s += std::pow(double(x.row(i)[t]) - y.row(j)[t], 2);
        c[i * n + j] = 0.5 * s;
      }
    const AssignmentResult res = exact_assignment(x, y, Context{1});
    ASSERT_TRUE(is_permutation(res.permutation, n));
    EXPECT_NEAR(res.cost, brute_force_min(c, n), 1e-5 * (1 + res.cost));
  }
}

TEST(JonkerVolgenant, IntegerCostsWithManyTiesAreOptimal) {
  Rng r(3);
  for (int64_t n : {5, 8}) {
    for (int rep = 0; rep < 10; ++rep) {
      std::vector<double> c(n * n);
      for (double& v : c) v = static_cast<double>(r.below(3));
      const AssignmentResult res = solve_assignment(std::span<const double>(c), n);
      ASSERT_TRUE(is_permutation(res.permutation, n));
      EXPECT_DOUBLE_EQ(res.cost, brute_force_min(c, n));
    }
  }
}

TEST(JonkerVolgenant, ConstantMatrixAndDuplicatePointsGiveValidPermutations) {
  const int64_t n = 300;
  std::vector<float> zero(n * n, 0.0f);
  EXPECT_TRUE(is_permutation(solve_assignment(std::span<const float>(zero), n).permutation, n));
  // All y identical, x in two duplicated clusters.
  Points x(n, 4), y(n, 4);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < 4; ++t) x.row(i)[t] = (i % 2) ? 1.0f : -1.0f, y.row(i)[t] = 0.5f;
  const AssignmentResult res = exact_assignment(x, y, Context{});
  EXPECT_TRUE(is_permutation(res.permutation, n));
  EXPECT_NEAR(res.cost, n / 2 * 4 * (0.5 * 0.25) + n / 2 * 4 * (0.5 * 2.25), 1e-6);
}

TEST(JonkerVolgenant, OneDimensionalSortedMatchingIsOptimal) {
  // In 1-D the optimal map for a convex cost is monotone: the i-th smallest x goes to the i-th smallest y.
  const int64_t n = 250;
  const Points x = gaussian_points(n, 1, 7), y = gaussian_points(n, 1, 8, 3.0f);
  std::vector<int64_t> ox(n), oy(n);
  std::iota(ox.begin(), ox.end(), 0);
  std::iota(oy.begin(), oy.end(), 0);
  std::sort(ox.begin(), ox.end(), [&](auto a, auto b) { return x.data[a] < x.data[b]; });
  std::sort(oy.begin(), oy.end(), [&](auto a, auto b) { return y.data[a] < y.data[b]; });
  std::vector<int64_t> sorted(n);
  for (int64_t k = 0; k < n; ++k) sorted[ox[k]] = oy[k];
  const AssignmentResult res = exact_assignment(x, y, Context{});
  ASSERT_TRUE(is_permutation(res.permutation, n));
  EXPECT_NEAR(res.cost, matching_cost(x, y, sorted), 1e-6 * res.cost);
}

TEST(NetworkSimplex, AgreesWithJonkerVolgenantOnRandomN200) {
  ASSERT_TRUE(have_network_simplex()) << "otgen was built without LEMON (liblemon-dev is required)";
  for (uint64_t seed : {1, 2, 3}) {
    const Points x = gaussian_points(200, 16, seed), y = gaussian_points(200, 16, seed + 50, 1.5f);
    const AssignmentResult jv = exact_assignment(x, y, Context{});
    AssignmentOptions opt;
    opt.solver = AssignmentSolver::NetworkSimplex;
    const AssignmentResult ns = exact_assignment(x, y, Context{}, opt);
    ASSERT_TRUE(is_permutation(jv.permutation, 200));
    ASSERT_TRUE(is_permutation(ns.permutation, 200));
    EXPECT_NEAR(jv.cost, ns.cost, 1e-5 * ns.cost) << "seed " << seed;
  }
}

TEST(NetworkSimplex, RectangularAssignmentMatchesBruteForce) {
  ASSERT_TRUE(have_network_simplex()) << "otgen was built without LEMON (liblemon-dev is required)";
  Rng r(5);
  for (auto [n, m] : std::vector<std::pair<int64_t, int64_t>>{{3, 5}, {5, 3}, {4, 4}, {1, 6}, {6, 2}}) {
    std::vector<double> c(n * m);
    for (double& v : c) v = r.uniform() * 4 - 1;
    const RectangularAssignment ra = solve_rectangular_assignment(c, n, m);
    ASSERT_EQ(static_cast<int64_t>(ra.rows.size()), std::min(n, m));
    std::vector<char> ur(n, 0), uc(m, 0);
    for (size_t k = 0; k < ra.rows.size(); ++k) {
      ASSERT_FALSE(ur[ra.rows[k]]++);
      ASSERT_FALSE(uc[ra.cols[k]]++);
    }
    // Brute force: pad the smaller side with zero-cost dummies to a square problem.
    const int64_t s = std::max(n, m);
    std::vector<double> sq(s * s, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) sq[i * s + j] = c[i * m + j];
    EXPECT_NEAR(ra.cost, brute_force_min(sq, s), 1e-9) << n << " x " << m;
  }
}

TEST(NetworkSimplex, WeightedOneDimensionalPlanMatchesNorthWestCorner) {
  ASSERT_TRUE(have_network_simplex()) << "otgen was built without LEMON (liblemon-dev is required)";
  // Sorted 1-D points: the north-west corner rule on sorted supports is optimal for a convex cost.
  const int64_t n = 7, m = 5;
  std::vector<double> xs(n), ys(m), a(n), b(m);
  Rng r(9);
  double sa = 0, sb = 0;
  for (int64_t i = 0; i < n; ++i) xs[i] = i * 0.7 + r.uniform() * 0.1, a[i] = 0.2 + r.uniform(), sa += a[i];
  for (int64_t j = 0; j < m; ++j) ys[j] = j * 1.1 - 0.5 + r.uniform() * 0.1, b[j] = 0.2 + r.uniform(), sb += b[j];
  for (double& v : a) v /= sa;
  for (double& v : b) v /= sb;
  std::vector<double> c(n * m);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) c[i * m + j] = 0.5 * (xs[i] - ys[j]) * (xs[i] - ys[j]);
  double nw = 0;
  {
    std::vector<double> ra = a, rb = b;
    int64_t i = 0, j = 0;
    while (i < n && j < m) {
      const double t = std::min(ra[i], rb[j]);
      nw += t * c[i * m + j];
      ra[i] -= t, rb[j] -= t;
      if (ra[i] <= 1e-15) ++i; else ++j;
    }
  }
  const TransportPlan p = exact_transport(c, n, m, a, b);
  EXPECT_NEAR(p.cost, nw, 1e-9);
  std::vector<double> rs(n, 0), cs(m, 0);
  for (size_t k = 0; k < p.mass.size(); ++k) rs[p.rows[k]] += p.mass[k], cs[p.cols[k]] += p.mass[k];
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(rs[i], a[i], 1e-11);
  for (int64_t j = 0; j < m; ++j) EXPECT_NEAR(cs[j], b[j], 1e-11);
  EXPECT_LE(static_cast<int64_t>(p.mass.size()), n + m - 1);  // a basic solution
}

TEST(NetworkSimplex, UniformSquarePlanIsThePermutationOverN) {
  ASSERT_TRUE(have_network_simplex()) << "otgen was built without LEMON (liblemon-dev is required)";
  const Points x = gaussian_points(40, 3, 21), y = gaussian_points(40, 3, 22);
  const TransportPlan p = exact_transport(x, y, {}, {}, Context{});
  const AssignmentResult a = exact_assignment(x, y, Context{});
  EXPECT_NEAR(p.cost, a.cost / 40, 1e-6 * a.cost);
  // Zero-weight targets are never used.
  std::vector<double> b(40, 1.0 / 20);
  for (int64_t j = 0; j < 40; j += 2) b[j] = 0;
  const TransportPlan q = exact_transport(x, y, {}, b, Context{});
  for (size_t k = 0; k < q.cols.size(); ++k) EXPECT_EQ(q.cols[k] % 2, 1);
}

TEST(Assignment, BadInputIsRejected) {
  const Points x = gaussian_points(4, 2, 1), y = gaussian_points(5, 2, 2), z(0, 2);
  test::expect_error_contains([&] { exact_assignment(z, z, Context{}); }, "at least one point");
  test::expect_error_contains([&] { exact_assignment(x, y, Context{}); }, "as many points as x");
  Points bad = x;
  bad.data[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(exact_assignment(bad, x, Context{}), Error);
  std::vector<double> c(9, 1.0);
  c[4] = std::numeric_limits<double>::infinity();
  test::expect_error_contains([&] { solve_assignment(std::span<const double>(c), 3); }, "finite values");
  test::expect_error_contains([&] { solve_assignment(std::span<const double>(c), 4); }, "n * m = 16");
  test::expect_error_contains([&] { solve_assignment(std::span<const double>(), 0); }, "at least 1 row");
  if (have_network_simplex()) {
    std::vector<double> ok(6, 1.0), a{0.5, 0.6}, neg{1.5, -0.5};
    test::expect_error_contains([&] { exact_transport(ok, 2, 3, a, {}); }, "summing to 1");
    test::expect_error_contains([&] { exact_transport(ok, 2, 3, neg, {}); }, "non-negative");
  }
}

}  // namespace
}  // namespace otgen
