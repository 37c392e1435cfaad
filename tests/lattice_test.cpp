// The int8 screen (otgen/kernels/lattice.h) against a naive double-precision argmax, and its lattice detection.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "otgen/core/blas_threads.h"
#include "otgen/kernels/lattice.h"
#include "otgen/ot/semidiscrete.h"
#include "test_util.h"

namespace otgen {
namespace {

using test::expect_error_contains;
using test::gaussian_points;
using test::Naive;
using test::naive_argmax;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// m points in R^d on the lattice offset + step * u, u in [0, levels), drawn so that images-like
// structure (a shared mean plus noise) gives close competitors.
Points lattice_points(int64_t m, int64_t d, int levels, double offset, double step, uint64_t seed) {
  Points y(m, d);
  Rng r(seed);
  std::vector<double> mean(static_cast<size_t>(d));
  for (auto& v : mean) v = r.uniform() * (levels - 1);
  for (int64_t j = 0; j < m; ++j)
    for (int64_t k = 0; k < d; ++k) {
      const double u = std::clamp(std::round(mean[k] + 0.3 * (levels - 1) * r.normal()), 0.0, levels - 1.0);
      y.row(j)[k] = static_cast<float>(offset + step * u);
    }
  return y;
}

void expect_matches_naive(PointsView x, PointsView y, std::span<const float> h, int threads) {
  const auto L = LatticeColumns::build(y, Context{});
  ASSERT_NE(L, nullptr);
  std::vector<int64_t> idx(static_cast<size_t>(x.n));
  std::vector<float> val(static_cast<size_t>(x.n));
  Context ctx;
  ctx.threads = threads;
  row_argmax(ScoreProblem{x, y, h}, *L, idx, val, ctx);
  const Naive ref = naive_argmax(x, y, h);
  for (int64_t i = 0; i < x.n; ++i) {
    ASSERT_EQ(idx[i], ref.index[i]) << "row " << i;
    EXPECT_EQ(val[i], static_cast<float>(ref.value[i])) << "row " << i;
  }
}

class LatticeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!LatticeColumns::cpu_supported()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  }
};

TEST_F(LatticeTest, DetectsEightBitAndCoarserLatticesAndRejectsOthers) {
  // Fashion-MNIST's scaling: pixel / 127.5 - 1.
  Points img(3, 4);
  const int pix[12] = {0, 255, 17, 128, 3, 9, 200, 201, 64, 0, 0, 255};
  for (int k = 0; k < 12; ++k) img.data[k] = pix[k] / 127.5f - 1.0f;
  auto L = LatticeColumns::build(img, Context{});
  ASSERT_NE(L, nullptr);
  EXPECT_DOUBLE_EQ(L->offset(), -1.0);
  EXPECT_NEAR(L->step(), 1 / 127.5, 1e-9);
  EXPECT_EQ(L->levels(), 256);
  EXPECT_LT(L->deviation(), 1e-7);
  EXPECT_EQ(L->column_l1()[0], 0 + 255 + 17 + 128);
  EXPECT_EQ(L->column_l1()[2], 64 + 0 + 0 + 255);
  EXPECT_EQ(L->column_l1()[3], 0);  // padding

  // The digits' scaling: 0..16 / 8 - 1 (17 levels, not a divisor of 255).
  Points dig(2, 3);
  const int lev[6] = {0, 16, 5, 7, 1, 12};
  for (int k = 0; k < 6; ++k) dig.data[k] = lev[k] / 8.0f - 1.0f;
  L = LatticeColumns::build(dig, Context{});
  ASSERT_NE(L, nullptr);
  EXPECT_DOUBLE_EQ(L->step(), 0.125);
  EXPECT_EQ(L->levels(), 17);

  EXPECT_EQ(LatticeColumns::build(gaussian_points(50, 3, 1), Context{}), nullptr);
  Points wide(1, 257);  // 257 levels do not fit in 8 bits
  for (int k = 0; k < 257; ++k) wide.data[k] = static_cast<float>(k);
  EXPECT_EQ(LatticeColumns::build(wide, Context{}), nullptr);
  Points bad = img;
  bad.data[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(LatticeColumns::build(bad, Context{}), nullptr);
  EXPECT_EQ(LatticeColumns::build(PointsView{nullptr, 0, 4}, Context{}), nullptr);
  EXPECT_EQ(LatticeColumns::build(Points(2, 65537), Context{}), nullptr);  // int32 could overflow
}

TEST_F(LatticeTest, ArgmaxMatchesNaiveDoubleLoopOnRaggedShapes) {
  // n not a multiple of 12, m not a multiple of 32, d not a multiple of 4; masked columns.
  const Points y = lattice_points(997, 37, 256, -1.0, 1 / 127.5, 3);
  const Points x = gaussian_points(50, 37, 4);
  std::vector<float> h(997);
  Rng r(5);
  for (auto& v : h) v = static_cast<float>(2 * r.normal());
  for (int j = 0; j < 997; j += 7) h[j] = kNegInf;
  expect_matches_naive(x, y, h, 1);
  expect_matches_naive(x, y, h, 2);
  expect_matches_naive(x, y, {}, 2);
}

TEST_F(LatticeTest, ArgmaxMatchesNaiveOnImageSizedRowsAndManyRowBlocks) {
  // d = 784 (Fashion-MNIST), 800 rows (three row blocks), and the half-cost bias -|y|^2 / 2 + g.
  const Points y = lattice_points(300, 784, 256, -1.0, 1 / 127.5, 6);
  const Points x = gaussian_points(800, 784, 7);
  const auto n2 = squared_norms(y);
  std::vector<float> h(300);
  Rng r(8);
  for (int j = 0; j < 300; ++j) h[j] = static_cast<float>(-0.5 * n2[j] + 3 * r.normal());
  expect_matches_naive(x, y, h, 2);
}

TEST_F(LatticeTest, TiesGoToTheLowestColumnAndZeroRowsToTheBestBias) {
  // Duplicate columns tie exactly; a zero row of x scores h alone.
  Points y = lattice_points(40, 16, 17, -1.0, 0.125, 9);
  for (int k = 0; k < 16; ++k) y.row(30)[k] = y.row(3)[k], y.row(31)[k] = y.row(3)[k];
  Points x = gaussian_points(24, 16, 10);
  for (int k = 0; k < 16; ++k) x.row(5)[k] = 0.0f;
  std::vector<float> h(40, 0.0f);
  h[17] = 0.5f;
  expect_matches_naive(x, y, h, 2);
  // Force the tie: a row of x equal to column 3 picks 3 (not 30 or 31).
  for (int k = 0; k < 16; ++k) x.row(0)[k] = y.row(3)[k];
  std::fill(h.begin(), h.end(), 0.0f);
  const auto L = LatticeColumns::build(y, Context{});
  std::vector<int64_t> idx(24);
  std::vector<float> val(24);
  row_argmax(ScoreProblem{x, y, h}, *L, idx, val, Context{});
  const Naive ref = naive_argmax(x, y, h);
  EXPECT_EQ(idx, ref.index);
  EXPECT_EQ(idx[5], 0);  // every score 0: the lowest column
}

TEST_F(LatticeTest, ErrorsNameTheArgument) {
  const Points y = lattice_points(10, 4, 256, 0.0, 1.0, 11);
  const Points other = y;
  const Points x = gaussian_points(3, 4, 12);
  const auto L = LatticeColumns::build(y, Context{});
  std::vector<int64_t> idx(3);
  std::vector<float> val(3);
  expect_error_contains([&] { row_argmax(ScoreProblem{x, other, {}}, *L, idx, val, Context{}); }, "lattice");
  std::vector<float> masked(10, kNegInf);
  expect_error_contains([&] { row_argmax(ScoreProblem{x, y, masked}, *L, idx, val, Context{}); }, "all masked");
  std::vector<int64_t> short_idx(2);
  expect_error_contains([&] { row_argmax(ScoreProblem{x, y, {}}, *L, short_idx, val, Context{}); }, "index");
  const Points x5 = gaussian_points(3, 5, 12);
  expect_error_contains([&] { row_argmax(ScoreProblem{x5, y, {}}, *L, idx, val, Context{}); }, "dimension");
}

TEST_F(LatticeTest, SemidiscreteFitAndAssignUseTheScreen) {
  // Lattice data: the fit reports the screen, and gives the float32 path's bits while no near-tie
  // (~1e-6) flips an argmax (100 steps here; at 193 one does, and the screen has the larger score).
  // 500 x 64 is below the auto path's size for the screen (kInt8MinWork): engine vnni forces it.
  const Points y = lattice_points(500, 64, 17, -1.0, 0.125, 13);
  SemidiscreteOT::Options o;
  o.steps = 100;
  o.batch_size = 256;
  o.chi2_every = 0;
  o.lr = 2.0;  // not from the data's score gaps, whose top-2 values differ in rounding between paths
  o.init = SdotInit::Zero;
  Context ctx;
  ctx.seed = 14;
  ctx.quiet = true;
  const bool small_screens = !blas_has_fma_kernels();  // auto screens small sets only on slow OpenBLAS kernels
  EXPECT_EQ(SemidiscreteOT(o).fit(y, {}, ctx).int8_screen, small_screens);  // auto, small
  o.engine.path = EnginePath::Vnni;
  const auto with = SemidiscreteOT(o).fit(y, {}, ctx);
  EXPECT_TRUE(with.int8_screen);
  EXPECT_EQ(with.engine, "vnni");
  o.engine.path = EnginePath::Auto;
  o.engine.int8_screen = false;
  const auto without = SemidiscreteOT(o).fit(y, {}, ctx);
  EXPECT_FALSE(without.int8_screen);
  EXPECT_EQ(with.g, without.g);
  EXPECT_FALSE(SemidiscreteOT(o).fit(gaussian_points(50, 3, 1), {}, ctx).int8_screen);

  // assign through a prepared map equals the naive double argmax of g_j - |x - y_j|^2 / 2.
  SemidiscreteMap map;
  map.y = y;
  map.g = with.g;
  EXPECT_FALSE(sdot_int8_screen(map));
  sdot_prepare(map, ctx);
  EXPECT_EQ(sdot_int8_screen(map), small_screens);  // auto, small
  ScoreOptions vnni;
  vnni.path = EnginePath::Vnni;
  sdot_prepare(map, ctx, vnni);
  EXPECT_TRUE(sdot_int8_screen(map));
  const Points x = sdot_noise(300, 64, 15, ctx);
  const auto got = sdot_assign(map, x, ctx, {}, vnni);
  std::vector<float> h(500);
  const auto n2 = squared_norms(y);
  for (int j = 0; j < 500; ++j) h[j] = static_cast<float>(static_cast<double>(with.g[j]) - 0.5 * n2[j]);
  EXPECT_EQ(got, naive_argmax(x, y, h).index);
  // From kInt8MinWork = 2^17 columns x dimensions on, the auto path screens whatever the kernels.
  const Points big = lattice_points(2048, 64, 17, -1.0, 0.125, 16), below = lattice_points(2047, 64, 17, -1.0, 0.125, 16);
  const std::vector<float> zeros(2048, 0.0f);
  for (const Points* p : {&big, &below}) {
    SemidiscreteMap m;
    m.y = *p;
    m.g = std::span<const float>(zeros).first(static_cast<size_t>(p->n));
    sdot_prepare(m, ctx);
    EXPECT_EQ(sdot_int8_screen(m), p == &big || small_screens) << p->n;
    if (p == &big) EXPECT_EQ(sdot_argmax_engine(m), "vnni");
  }
  // A map prepared for other arrays is not used: a copy of y gives the same answer through a fresh one.
  const Points y2 = y;
  map.y = y2;
  EXPECT_EQ(sdot_assign(map, x, ctx), got);
}

TEST_F(LatticeTest, ConditionalMapsScreenEachClassAndTheAugmentedCost) {
  // Per-class potentials (each class its own lattice copy) and a finite class penalty (one shared
  // lattice, the penalty in h): assign equals the naive double argmax over the allowed columns.
  const Points y = lattice_points(120, 20, 256, -1.0, 1 / 127.5, 21);
  std::vector<int64_t> labels(120);
  for (int j = 0; j < 120; ++j) labels[j] = j % 3;
  std::vector<float> g(120);
  Rng r(22);
  for (auto& v : g) v = static_cast<float>(r.normal());
  const Points x = gaussian_points(90, 20, 23);
  std::vector<int64_t> xl(90);
  for (int i = 0; i < 90; ++i) xl[i] = (i * 7) % 3;
  const auto n2 = squared_norms(y);
  for (double beta : {std::numeric_limits<double>::infinity(), 2.0}) {
    SemidiscreteMap map;
    map.y = y;
    map.g = g;
    map.labels = labels;
    map.class_penalty = beta;
    ScoreOptions vnni;  // 120 x 20: below the auto path's size for the screen
    vnni.path = EnginePath::Vnni;
    sdot_prepare(map, Context{}, vnni);
    ASSERT_TRUE(sdot_int8_screen(map)) << beta;
    const auto got = sdot_assign(map, x, Context{}, xl);
    for (int i = 0; i < 90; ++i) {
      double best = -std::numeric_limits<double>::infinity();
      int64_t arg = -1;
      for (int j = 0; j < 120; ++j) {
        if (std::isinf(beta) && labels[j] != xl[i]) continue;
        // The same float h as the map: g - |y|^2 / 2 (- beta off-class), rounded once to float.
        double hj = static_cast<double>(g[j]) - 0.5 * n2[j];
        if (!std::isinf(beta) && labels[j] != xl[i]) hj += static_cast<float>(-beta);
        double sc = static_cast<float>(hj);
        for (int k = 0; k < 20; ++k) sc += static_cast<double>(x.row(i)[k]) * y.row(j)[k];
        if (sc > best) best = sc, arg = j;
      }
      EXPECT_EQ(got[i], arg) << "beta " << beta << " row " << i;
    }
  }
}

}  // namespace
}  // namespace otgen
