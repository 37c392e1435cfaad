// The int8 screen (otgen/kernels/lattice.h) against a naive double-precision argmax, and its lattice detection.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "otgen/core/blas_threads.h"
#include "otgen/core/cpu_features.h"
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

// The half-cost bias of a fitted map, -|y_j|^2 / 2 + g_j, with g ~ 3 N(0, 1) drawn from seed.
std::vector<float> half_cost_bias(const Points& y, uint64_t seed) {
  const auto n2 = squared_norms(y);
  std::vector<float> h(static_cast<size_t>(y.n));
  Rng r(seed);
  for (int64_t j = 0; j < y.n; ++j) h[j] = static_cast<float>(-0.5 * n2[j] + 3 * r.normal());
  return h;
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
  expect_matches_naive(x, y, half_cost_bias(y, 8), 2);
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
  if (engine_path_unsupported(EnginePath::Amx).empty()) {  // the AMX-INT8 kind: the same fit, bit for bit
    o.engine.path = EnginePath::Amx;
    const auto amx = SemidiscreteOT(o).fit(y, {}, ctx);
    EXPECT_TRUE(amx.int8_screen);
    EXPECT_EQ(amx.engine, "amx");
    EXPECT_EQ(amx.g, with.g);
  }
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
    if (p == &big) {
      EXPECT_EQ(sdot_argmax_engine(m), engine_path_unsupported(EnginePath::Amx).empty() ? "amx" : "vnni");
    }
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

// The AMX-INT8 kind of the columns (LatticeColumns::build(y, ctx, true)) against the VNNI kind and the naive
// double argmax: the int32 products are exact, so every index and value must be identical.
class LatticeAmxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!LatticeColumns::cpu_supported()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
    if (!cpu_features().amx_int8) GTEST_SKIP() << "no usable AMX-INT8 (cpuid, XCR0 tile state or Linux's permission)";
  }
};

struct Argmax {
  std::vector<int64_t> index;
  std::vector<float> value;
};

Argmax screened(PointsView x, PointsView y, std::span<const float> h, const LatticeColumns& L, int threads) {
  Argmax a{std::vector<int64_t>(static_cast<size_t>(x.n)), std::vector<float>(static_cast<size_t>(x.n))};
  Context ctx;
  ctx.threads = threads;
  row_argmax(ScoreProblem{x, y, h}, L, a.index, a.value, ctx);
  return a;
}

// AMX with 1 and 2 threads and VNNI with 2 threads, all equal to the naive double argmax.
void expect_amx_matches(PointsView x, PointsView y, std::span<const float> h, const std::string& what) {
  const auto vnni = LatticeColumns::build(y, Context{});
  const auto amx = LatticeColumns::build(y, Context{}, true);
  ASSERT_NE(vnni, nullptr) << what;
  ASSERT_NE(amx, nullptr) << what;
  ASSERT_FALSE(vnni->amx()) << what;
  ASSERT_TRUE(amx->amx()) << what;
  const Argmax v = screened(x, y, h, *vnni, 2), a1 = screened(x, y, h, *amx, 1), a2 = screened(x, y, h, *amx, 2);
  const Naive ref = naive_argmax(x, y, h);
  ASSERT_EQ(a1.index, v.index) << what;
  ASSERT_EQ(a2.index, v.index) << what;
  ASSERT_EQ(a1.index, ref.index) << what;
  for (int64_t i = 0; i < x.n; ++i) {
    // Bit patterns: identical floats, not merely equal ones.
    ASSERT_EQ(std::bit_cast<uint32_t>(a1.value[i]), std::bit_cast<uint32_t>(v.value[i])) << what << " row " << i;
    ASSERT_EQ(std::bit_cast<uint32_t>(a2.value[i]), std::bit_cast<uint32_t>(v.value[i])) << what << " row " << i;
    ASSERT_EQ(a1.value[i], static_cast<float>(ref.value[i])) << what << " row " << i;
  }
}

TEST_F(LatticeAmxTest, BuildPacksWholeTilesOnlyWhenAsked) {
  const Points y = lattice_points(33, 65, 256, -1.0, 1 / 127.5, 31);
  const auto vnni = LatticeColumns::build(y, Context{}), amx = LatticeColumns::build(y, Context{}, true);
  ASSERT_NE(vnni, nullptr);
  ASSERT_NE(amx, nullptr);
  EXPECT_FALSE(vnni->amx());
  EXPECT_TRUE(amx->amx());
  EXPECT_EQ(vnni->quads(), 17);  // the VNNI layout is unchanged: ceil(65 / 4)
  EXPECT_EQ(amx->quads(), 32);   // whole K tiles of 16 quads, zero-padded
  EXPECT_EQ(amx->panels(), 2);
  // The same u in the shared part of the layout, zeros beyond it.
  for (int64_t p = 0; p < 2; ++p)
    for (int64_t kq = 0; kq < 32; ++kq)
      for (int b = 0; b < 4 * 32; ++b) {
        const uint8_t got = amx->packed()[(p * 32 + kq) * 128 + b];
        const uint8_t want = kq < 17 ? vnni->packed()[(p * 17 + kq) * 128 + b] : 0;
        ASSERT_EQ(got, want) << p << " " << kq << " " << b;
      }
  EXPECT_EQ(vnni->offset(), amx->offset());
  EXPECT_EQ(vnni->step(), amx->step());
  EXPECT_EQ(vnni->levels(), amx->levels());
  EXPECT_EQ(vnni->deviation(), amx->deviation());
}

TEST_F(LatticeAmxTest, ArgmaxIdenticalToVnniAndNaiveOnAwkwardSizes) {
  // d around 4, 16-quad (64-byte) and 32-row edges; n and m around 32; masked columns, duplicated columns
  // (exact ties: lowest j), the digits' 17 levels and 256 levels.
  int cases = 0;
  for (int64_t d : {1, 2, 3, 4, 5, 6, 7, 8, 17, 63, 64, 65, 785})
    for (int64_t n : {1, 31, 32, 33, 97})
      for (int64_t m : {1, 31, 32, 33, 97}) {
        const bool digits = (d + n + m) % 2 == 0;
        const uint64_t seed = static_cast<uint64_t>(1000 * d + 10 * n + m);
        Points y = digits ? lattice_points(m, d, 17, -1.0, 0.125, seed) : lattice_points(m, d, 256, -1.0, 1 / 127.5, seed);
        std::vector<float> h(static_cast<size_t>(m));
        Rng r(seed + 1);
        for (auto& v : h) v = static_cast<float>(0.5 * r.normal());
        for (int64_t j = 3; j < m; j += 5) h[j] = kNegInf;  // masked; column 0 never is
        // Levels 0, 1 and the top first, so that even a few short columns reveal the lattice.
        const double step = digits ? 0.125 : 1 / 127.5;
        const int top = digits ? 16 : 255;
        for (int64_t t = 0; t < std::min<int64_t>(m * d, 3); ++t) y.data[t] = static_cast<float>(-1.0 + step * (t == 2 ? top : t));
        if (m >= 3)
          for (int64_t j : {m - 1, m / 2 + 1}) {  // copies of column 0 with its bias: ties
            if (j % 5 == 3) continue;
            for (int64_t k = 0; k < d; ++k) y.row(j)[k] = y.row(0)[k];
            h[j] = h[0];
          }
        Points x = gaussian_points(n, d, seed + 2);
        if (n >= 2)
          for (int64_t k = 0; k < d; ++k) x.row(1)[k] = y.row(0)[k];  // a row aimed at the tied columns
        const std::string what = "d " + std::to_string(d) + " n " + std::to_string(n) + " m " + std::to_string(m);
        expect_amx_matches(x, y, h, what);
        expect_amx_matches(x, y, {}, what + " no h");
        ++cases;
      }
  EXPECT_EQ(cases, 13 * 25);
}

TEST_F(LatticeAmxTest, ArgmaxIdenticalToVnniOnImageSizedRowsAndManyRowBlocks) {
  // d = 784, 1000 rows (three 384-row blocks, the last one ragged), the half-cost bias -|y|^2 / 2 + g.
  const Points y = lattice_points(333, 784, 256, -1.0, 1 / 127.5, 41);
  const Points x = gaussian_points(1000, 784, 42);
  expect_amx_matches(x, y, half_cost_bias(y, 43), "784");
}

}  // namespace
}  // namespace otgen
