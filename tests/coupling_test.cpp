#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "otgen/ot/assignment.h"
#include "otgen/coupling/coupling.h"
#include "otgen/core/rng.h"
#include "otgen/kernels/lattice.h"
#include "test_util.h"

namespace otgen {
namespace {

using test::gaussian_points;

struct Labelled {
  Points x;
  std::vector<int64_t> labels;
  CouplingData data() const { return {x.view(), labels, 3}; }
};

Labelled labelled_data(int64_t n, int64_t d, uint64_t seed) {
  Labelled l{gaussian_points(n, d, seed), std::vector<int64_t>(n)};
  for (int64_t i = 0; i < n; ++i) {
    l.labels[i] = i % 3;
    l.x.row(i)[0] += 4.0f * static_cast<float>(l.labels[i]);  // classes apart in the first coordinate
  }
  return l;
}

Points gather(const Points& x, const std::vector<int64_t>& rows) {
  Points out(static_cast<int64_t>(rows.size()), x.d);
  for (size_t r = 0; r < rows.size(); ++r) std::copy(x.row(rows[r]), x.row(rows[r]) + x.d, out.row(r));
  return out;
}

TEST(IndependentCoupling, DeterministicInRangeAndClassWise) {
  const Labelled l = labelled_data(90, 4, 1);
  const IndependentCoupling c(l.data());
  const Points noise = gaussian_points(50, 4, 2);
  const Pairs a = c.sample(noise, 7, Context{}), b = c.sample(noise, 7, Context{}), d = c.sample(noise, 8, Context{});
  EXPECT_EQ(a.target, b.target);
  EXPECT_NE(a.target, d.target);
  ASSERT_EQ(a.labels.size(), 50u);
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_GE(a.target[i], 0);
    EXPECT_LT(a.target[i], 90);
    EXPECT_EQ(a.labels[i], l.labels[a.target[i]]);
  }
  std::vector<int64_t> want(50);
  for (int64_t i = 0; i < 50; ++i) want[i] = (i * 7) % 3;
  const Pairs p = c.sample(noise, want, 3, Context{});
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ(l.labels[p.target[i]], want[i]);
}

TEST(BatchOTCoupling, ExactPairsAreTheOptimalPermutationOfTheDrawnBatch) {
  const Points data = gaussian_points(500, 5, 3, 1.0f, 1.0f);
  const BatchOTCoupling c({data.view(), {}, 0});
  const Points noise = gaussian_points(64, 5, 4);
  const Pairs p = c.sample(noise, 11, Context{});
  EXPECT_TRUE(p.labels.empty());
  const std::set<int64_t> distinct(p.target.begin(), p.target.end());
  ASSERT_EQ(distinct.size(), 64u) << "drawn without replacement and matched by a permutation";
  // Re-solve on the drawn batch: the pairs must achieve the optimal cost.
  const std::vector<int64_t> batch(distinct.begin(), distinct.end());
  const Points x1 = gather(data, batch);
  const double best = exact_assignment(noise, x1, Context{}).cost;
  const double got = matching_cost(noise, data, p.target);
  EXPECT_NEAR(got, best, 1e-6 * best);
  EXPECT_EQ(c.sample(noise, 11, Context{}).target, p.target);
}

TEST(BatchOTCoupling, ClassWiseMatchingStaysInsideEachClass) {
  const Labelled l = labelled_data(300, 3, 5);
  const Points noise = gaussian_points(60, 3, 6);
  std::vector<int64_t> want(60);
  for (int64_t i = 0; i < 60; ++i) want[i] = i < 10 ? 0 : (i < 35 ? 1 : 2);
  for (BatchOTMethod m : {BatchOTMethod::Exact, BatchOTMethod::Sinkhorn}) {
    BatchOTOptions opt;
    opt.method = m;
    opt.round_to_permutation = true;
    const BatchOTCoupling c(l.data(), opt);
    const Pairs p = c.sample(noise, want, 9, Context{});
    const std::set<int64_t> distinct(p.target.begin(), p.target.end());
    EXPECT_EQ(distinct.size(), 60u);
    for (int64_t i = 0; i < 60; ++i) {
      EXPECT_EQ(l.labels[p.target[i]], want[i]);
      EXPECT_EQ(p.labels[i], want[i]);
    }
  }
}

TEST(BatchOTCoupling, SinkhornPairsCostLiesBetweenExactAndIndependent) {
  const Points data = gaussian_points(2000, 6, 7, 1.0f, 2.0f);
  const Points noise = gaussian_points(128, 6, 8);
  BatchOTOptions opt;
  opt.method = BatchOTMethod::Sinkhorn;
  opt.sinkhorn.epsilon = 0.02;
  opt.round_to_permutation = true;  // a permutation of the same drawn batch (same seed): never below exact
  const double sk = matching_cost(noise, data, BatchOTCoupling({data.view(), {}, 0}, opt).sample(noise, 1, Context{}).target);
  const double ex = matching_cost(noise, data, BatchOTCoupling({data.view(), {}, 0}).sample(noise, 1, Context{}).target);
  const double in = matching_cost(noise, data, IndependentCoupling({data.view(), {}, 0}).sample(noise, 1, Context{}).target);
  EXPECT_LE(ex, sk * (1 + 1e-9));
  EXPECT_LT(sk, 0.8 * in);
}

TEST(SemidiscreteCoupling, HardAssignmentIsTheNaiveArgmax) {
  const Labelled l = labelled_data(120, 4, 9);
  std::vector<float> g(120);
  Rng r(10);
  for (float& v : g) v = static_cast<float>(r.normal());
  const SemidiscreteCoupling c(l.data(), g, 0.0);
  const Points noise = gaussian_points(40, 4, 11, 2.0f, 3.0f);
  auto score = [&](int64_t i, int64_t j) {
    double dot = 0, ny = 0;
    for (int64_t t = 0; t < 4; ++t) dot += double(noise.row(i)[t]) * l.x.row(j)[t], ny += double(l.x.row(j)[t]) * l.x.row(j)[t];
    return dot + g[j] - 0.5 * ny;
  };
  const Pairs p = c.sample(noise, 1, Context{});
  for (int64_t i = 0; i < 40; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < 120; ++j)
      if (score(i, j) > score(i, best)) best = j;
    EXPECT_EQ(p.target[i], best) << "row " << i;
  }
  std::vector<int64_t> want(40);
  for (int64_t i = 0; i < 40; ++i) want[i] = i % 3;
  const Pairs q = c.sample(noise, want, 1, Context{});
  for (int64_t i = 0; i < 40; ++i) {
    int64_t best = -1;
    for (int64_t j = 0; j < 120; ++j)
      if (l.labels[j] == want[i] && (best < 0 || score(i, j) > score(i, best))) best = j;
    EXPECT_EQ(q.target[i], best) << "row " << i;
  }
}

TEST(SemidiscreteCoupling, NamesTheEnginePathOfItsSearches) {
  const Labelled l = labelled_data(120, 4, 9);
  EXPECT_EQ(SemidiscreteCoupling(l.data(), std::vector<float>(120), 0.0).engine(), "fp32");  // d < 32
  EXPECT_EQ(SemidiscreteCoupling(l.data(), std::vector<float>(120), 0.5).engine(), "fp32");  // soft: float32
  EXPECT_EQ(IndependentCoupling(l.data()).engine(), "");
  // 8-bit lattice data above the int8 screen's size rule (2048 x 64 >= 2^17): the screen's kernel.
  Points y(2048, 64);
  Rng r(12);
  for (float& v : y.data) v = static_cast<float>(std::floor(17 * r.uniform())) / 8.0f - 1.0f;
  const std::string want = !LatticeColumns::cpu_supported()                    ? std::string(engine_path_name(argmax_path(2048, 64)))
                           : engine_path_unsupported(EnginePath::Amx).empty() ? "amx"
                                                                              : "vnni";
  EXPECT_EQ(SemidiscreteCoupling({y.view(), {}, 0}, std::vector<float>(2048), 0.0).engine(), want);
}

TEST(SemidiscreteCoupling, SoftAssignmentFollowsTheSoftmaxAndMasksZeroWeights) {
  // Two equidistant data points at +-1 from noise x = 0: s = softmax((g_j - |y_j|^2/2)/eps).
  const Points data({1.0f, -1.0f, 0.0f}, 3, 1);
  const std::vector<float> g{0.3f, 0.0f, 0.0f};
  const double eps = 0.5;
  const SemidiscreteCoupling c({data.view(), {}, 0}, g, eps, {0.5, 0.5, 0.0});
  const int64_t n = 20000;
  const Points noise(std::vector<float>(n, 0.0f), n, 1);
  const Pairs p = c.sample(noise, 3, Context{});
  double c0 = 0;
  for (int64_t j : p.target) {
    ASSERT_NE(j, 2) << "zero-weight point drawn";
    c0 += j == 0;
  }
  const double q = 1.0 / (1.0 + std::exp(-0.3 / eps));
  EXPECT_NEAR(c0 / n, q, 4 * std::sqrt(q * (1 - q) / n));
}

TEST(Coupling, BadInputIsRejected) {
  const Points data = gaussian_points(10, 2, 1);
  const IndependentCoupling c({data.view(), {}, 0});
  const std::vector<int64_t> lab{0};
  test::expect_error_contains([&] { c.sample(gaussian_points(1, 2, 1), lab, 0, Context{}); }, "labelled data");
  test::expect_error_contains([&] { c.sample(gaussian_points(3, 5, 1), 0, Context{}); }, "data dimension");
  test::expect_error_contains([&] { c.sample(Points(0, 2), 0, Context{}); }, "at least one row");
  const std::vector<int64_t> bad{0, 5, 1};
  test::expect_error_contains([&] { CouplingData{data.view(), std::span<const int64_t>(bad), 2}.validate(); }, "length 3");
  test::expect_error_contains([&] { SemidiscreteCoupling({data.view(), {}, 0}, std::vector<float>(9), 0.0); }, "length 9");
  test::expect_error_contains([&] { SemidiscreteCoupling({data.view(), {}, 0}, std::vector<float>(10), -1.0); }, "eps");
  BatchOTOptions opt;
  opt.sinkhorn.tol = 0;
  test::expect_error_contains([&] { BatchOTCoupling({data.view(), {}, 0}, opt); }, "tol");
}

}  // namespace
}  // namespace otgen
