// Conditional flows, classifier-free guidance and MeanFlow (otgen/flow/flow.h): the JVP against finite
// differences, the guidance identities, class-respecting pairs, noise classes drawn from the weights,
// a one-point MeanFlow model against its closed form, and the CLI's conditional options.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "otgen/flow/flow.h"
#include "otgen/core/npy.h"
#include "test_util.h"

namespace otgen {
namespace {

using namespace otgen::flow;
using test::run_cli;
using test::TempDir;

ModelSpec mlp(int64_t d, int64_t classes, bool meanflow) {
  ModelSpec s;
  s.dim = d;
  s.width = 24;
  s.depth = 2;
  s.time_dim = 8;
  s.num_classes = classes;
  s.meanflow = meanflow;
  if (meanflow) s.time_scale = 1.0;  // the CLI's MeanFlow default
  return s;
}

ModelSpec unet(int64_t classes, bool meanflow) {
  ModelSpec s;
  s.kind = ModelKind::Unet;
  s.image_side = 8;
  s.channels = 1;
  s.dim = 64;
  s.base_channels = 8;
  s.mults = {1, 2};
  s.groups = 4;
  s.num_classes = classes;
  s.meanflow = meanflow;
  return s;
}

std::vector<double> normals(size_t n, uint64_t seed) {
  std::vector<double> v(n);
  Rng r(seed);
  for (auto& x : v) x = r.normal();
  return v;
}

double rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return std::sqrt(num / den);
}

TEST(MeanFlow, JvpEqualsCentralFiniteDifferencesInDouble) {
  for (const ModelSpec& s : {mlp(3, 0, true), mlp(3, 4, true), mlp(5, 0, false), unet(3, true), unet(0, false)}) {
    const FlowModel m = FlowModel::init(s, 11);
    const int64_t n = 6, d = s.dim;
    std::vector<double> x = normals(n * d, 1), dx = normals(n * d, 2), t(n), r, dt(n, 1.0), dr;
    std::vector<int64_t> y;
    for (int64_t i = 0; i < n; ++i) t[i] = 0.1 + 0.12 * i;
    if (s.meanflow) {
      for (int64_t i = 0; i < n; ++i) r.push_back(std::min(1.0, t[i] + 0.05 * i)), dr.push_back(0.0);
    }
    for (int64_t i = 0; i < n && s.num_classes > 0; ++i) y.push_back(i % (s.num_classes + 1));  // includes null
    std::vector<double> tangent;
    const auto out = m.evaluate_f64(x, t, r, y, dx, dt, dr, &tangent);
    EXPECT_EQ(out, m.evaluate_f64(x, t, r, y));  // the dual pass leaves the primal unchanged
    const double h = 1e-5;
    auto shifted = [&](double sign) {
      std::vector<double> xs = x, ts = t, rs = r;
      for (size_t i = 0; i < xs.size(); ++i) xs[i] += sign * h * dx[i];
      for (size_t i = 0; i < ts.size(); ++i) ts[i] += sign * h * dt[i];
      for (size_t i = 0; i < rs.size(); ++i) rs[i] += sign * h * dr[i];
      return m.evaluate_f64(xs, ts, rs, y);
    };
    const auto plus = shifted(1), minus = shifted(-1);
    std::vector<double> fd(plus.size());
    for (size_t i = 0; i < fd.size(); ++i) fd[i] = (plus[i] - minus[i]) / (2 * h);
    EXPECT_LT(rel_error(tangent, fd), 1e-3) << s.to_json().dump();
    // A wrong tangent would not pass: the JVP along dx alone differs.
    std::vector<double> no_t;
    m.evaluate_f64(x, t, r, y, dx, std::vector<double>(n, 0.0), dr, &no_t);
    EXPECT_GT(rel_error(no_t, fd), 1e-3);
  }
}

TEST(Guidance, WeightZeroIsTheNullClassOneTheClassAndOthersTheLinearCombination) {
  for (const ModelSpec& s : {mlp(2, 3, false), unet(3, false), mlp(2, 3, true)}) {
    const FlowModel m = FlowModel::init(s, 5);
    const Points x = test::gaussian_points(7, s.dim, 3);
    const std::vector<int64_t> labels = {0, 1, 2, 0, 1, 2, 2};
    std::vector<float> u(x.data.size()), c(x.data.size()), g0(x.data.size()), g1(x.data.size()), g(x.data.size());
    m.velocity(0.3, x, u, Context{});  // no labels: the null class
    m.velocity(0.3, x, g0, Context{}, {labels, 0.0});
    m.velocity(0.3, x, g1, Context{}, {labels, 1.0});
    m.velocity(0.3, x, g, Context{}, {labels, 2.5});
    EXPECT_EQ(g0, u);  // exact: the same single pass
    // w = 1 is the conditional field: row by row equal to a batch of one class.
    for (int64_t i = 0; i < x.n; ++i) {
      std::vector<float> one(s.dim);
      const int64_t l = labels[i];
      m.velocity(0.3, PointsView{x.row(i), 1, s.dim}, one, Context{}, {std::span<const int64_t>(&l, 1), 1.0});
      for (int64_t k = 0; k < s.dim; ++k) c[i * s.dim + k] = one[k];
    }
    for (size_t k = 0; k < c.size(); ++k) {
      EXPECT_NEAR(g1[k], c[k], 1e-5);
      EXPECT_NEAR(g[k], u[k] + 2.5 * (c[k] - u[k]), 1e-4);
    }
    EXPECT_NE(g1, u);  // the class changes the field
  }
}

TEST(Guidance, BadConditionsNameTheOption) {
  const FlowModel cond = FlowModel::init(mlp(2, 3, false), 1), plain = FlowModel::init(mlp(2, 0, false), 1);
  const Points x = test::gaussian_points(2, 2, 1);
  std::vector<float> out(4);
  const std::vector<int64_t> bad = {0, 3}, ok = {0, 1};
  test::expect_error_contains([&] { cond.velocity(0.5, x, out, Context{}, {bad, 1.0}); }, "--class");
  test::expect_error_contains([&] { plain.velocity(0.5, x, out, Context{}, {ok, 1.0}); }, "conditional model");
  test::expect_error_contains([&] { cond.velocity(0.5, x, out, Context{}, {ok, NAN}); }, "--guidance");
  test::expect_error_contains([&] { plain.mean_velocity(0.2, 0.5, x, out, Context{}); }, "MeanFlow");
}

// Labelled 2-D data: class k around (4 k, 0).
struct Labelled {
  Points x;
  std::vector<int64_t> labels;
  Labelled(int64_t n, int64_t K) : x(test::gaussian_points(n, 2, 9, 0.5f)), labels(n) {
    for (int64_t i = 0; i < n; ++i) labels[i] = i % K, x.data[2 * i] += 4.0f * static_cast<float>(labels[i]);
  }
};

// Runs a tiny conditional training and hands every step's pairs to `check`.
void conditional_pairs(const Labelled& data, int64_t K, const Coupling& c, int64_t steps, const PairsObserver& check) {
  TempDir dir;
  TrainOptions o;
  o.model = mlp(2, K, false);
  o.steps = steps;
  o.batch = 96;
  Context ctx;
  ctx.quiet = true;
  train_flow(o, CouplingData{data.x.view(), data.labels, K}, c, RunFiles{dir.path.string()}, false, {}, ctx, {}, check);
}

TEST(ConditionalTrain, SemidiscretePairsNeverCrossClassesAndNoiseClassesFollowTheWeights) {
  const int64_t K = 3, N = 300;
  const Labelled data(N, K);
  // Weights b: class 0 holds 60% of the mass, classes 1 and 2 20% each.
  std::vector<double> b(N);
  for (int64_t j = 0; j < N; ++j) b[j] = (data.labels[j] == 0 ? 0.6 : 0.2) / (N / K);
  const SemidiscreteCoupling c(CouplingData{data.x.view(), data.labels, K}, std::vector<float>(N, 0.0f), 0.0, b);
  std::vector<double> w = c.class_weights();
  ASSERT_EQ(w.size(), 3u);
  EXPECT_NEAR(w[0], 0.6, 1e-12);
  std::map<int64_t, int64_t> counts;
  int64_t rows = 0;
  conditional_pairs(data, K, c, 20, [&](int64_t, PointsView, std::span<const int64_t> target, std::span<const int64_t> l) {
    ASSERT_EQ(l.size(), target.size());
    for (size_t i = 0; i < target.size(); ++i) {
      EXPECT_EQ(data.labels[target[i]], l[i]);
      ++counts[l[i]];
      ++rows;
    }
  });
  // 1920 draws: within 5 standard deviations of the weights (not of the label counts, 1/3 each).
  for (int64_t k = 0; k < K; ++k) {
    const double p = w[k], sd = std::sqrt(p * (1 - p) / rows);
    EXPECT_NEAR(static_cast<double>(counts[k]) / rows, p, 5 * sd) << "class " << k;
  }
}

TEST(ConditionalTrain, ClassWiseBatchOTIsAPermutationWithinEachClass) {
  const int64_t K = 4;
  const Labelled data(400, K);
  const BatchOTCoupling c(CouplingData{data.x.view(), data.labels, K});
  int64_t steps = 0;
  conditional_pairs(data, K, c, 5, [&](int64_t, PointsView, std::span<const int64_t> target, std::span<const int64_t> l) {
    std::set<int64_t> seen;
    for (size_t i = 0; i < target.size(); ++i) {
      EXPECT_EQ(data.labels[target[i]], l[i]);
      EXPECT_TRUE(seen.insert(target[i]).second) << "data point " << target[i] << " used twice";
    }
    ++steps;
  });
  EXPECT_EQ(steps, 5);
}

TEST(ConditionalTrain, RefusesUnlabelledDataAndAClassCountMismatch) {
  TempDir dir;
  const Labelled data(60, 3);
  TrainOptions o;
  o.model = mlp(2, 3, false);
  o.steps = 2;
  o.batch = 8;
  Context ctx;
  ctx.quiet = true;
  const IndependentCoupling c(CouplingData{data.x.view(), {}, 0});
  test::expect_error_contains(
      [&] { train_flow(o, CouplingData{data.x.view(), {}, 0}, c, RunFiles{dir.path.string()}, false, {}, ctx); },
      "labelled data");
  o.model.num_classes = 4;
  test::expect_error_contains(
      [&] { train_flow(o, CouplingData{data.x.view(), data.labels, 3}, c, RunFiles{dir.path.string()}, false, {}, ctx); },
      "3 classes");
}

TEST(MeanFlow, OnePointModelMapsNoiseToThePointInOneStep) {
  // For a single data point y the average velocity is u(x, t, r) = (y - x) / (1 - t) for every r.
  TempDir dir;
  Points y(1, 2);
  y.data = {1.5f, -1.0f};
  TrainOptions o;
  o.model = mlp(2, 0, true);
  o.model.width = 64;
  o.steps = 800;
  o.batch = 256;
  o.lr = 3e-3;
  o.mf_ratio = 0.5;
  Context ctx;
  ctx.quiet = true;
  ctx.seed = 3;
  const IndependentCoupling c(CouplingData{y.view(), {}, 0});
  const TrainResult r = train_flow(o, CouplingData{y.view(), {}, 0}, c, RunFiles{dir.path.string()}, false, {}, ctx);
  ASSERT_EQ(r.termination, Termination::MaxSteps) << r.message;
  const FlowModel m = FlowModel::load(dir.file("model.pt"));
  ASSERT_TRUE(m.meanflow());
  Points x = test::gaussian_points(500, 2, 77);
  const Points x0 = x;
  OdeOptions one;
  one.method = OdeMethod::Euler;
  one.steps = 1;
  const OdeResult res = m.sample(x, one, ctx);
  EXPECT_EQ(res.nfe, 1);
  double err = 0, start = 0;
  for (int64_t i = 0; i < x.n; ++i)
    for (int c2 = 0; c2 < 2; ++c2) {
      err += std::pow(x.row(i)[c2] - y.data[c2], 2) / x.n;
      start += std::pow(x0.row(i)[c2] - y.data[c2], 2) / x.n;
    }
  EXPECT_LT(std::sqrt(err), 0.1 * std::sqrt(start)) << "rms error " << std::sqrt(err) << " from " << std::sqrt(start);
  // The field itself against the closed form at a mid interval.
  std::vector<float> u(x0.data.size());
  m.mean_velocity(0.25, 0.75, x0, u, ctx);
  double uerr = 0, unorm = 0;
  for (int64_t i = 0; i < x0.n; ++i)
    for (int c2 = 0; c2 < 2; ++c2) {
      const double exact = (y.data[c2] - x0.row(i)[c2]) / 0.75;
      uerr += std::pow(u[i * 2 + c2] - exact, 2);
      unorm += exact * exact;
    }
  EXPECT_LT(std::sqrt(uerr / unorm), 0.1);
}

TEST(ConditionalTrain, AStoppedAndResumedConditionalMeanFlowRunEqualsTheUninterruptedOne) {
  // The new random streams (noise classes per chunk, label dropout and (t, r) per step) are functions of
  // (seed, step): resuming redraws them exactly.
  const int64_t K = 3;
  const Labelled data(120, K);
  const CouplingData cd{data.x.view(), data.labels, K};
  const SemidiscreteCoupling c(cd, std::vector<float>(120, 0.0f), 0.0);
  TrainOptions o;
  o.model = mlp(2, K, true);
  o.steps = 40;
  o.batch = 32;
  o.checkpoint_every = 0;
  Context ctx;
  ctx.quiet = true;
  ctx.seed = 8;
  TempDir a, b;
  train_flow(o, cd, c, RunFiles{a.path.string()}, false, {}, ctx);
  const TrainResult first = train_flow(o, cd, c, RunFiles{b.path.string()}, false, {}, ctx,
                                       [](int64_t step, double) { return step < 17; });
  ASSERT_TRUE(first.stopped);
  ASSERT_EQ(first.steps, 17);
  train_flow(o, cd, c, RunFiles{b.path.string()}, true, {}, ctx);
  const FlowModel ma = FlowModel::load(a.file("model.pt")), mb = FlowModel::load(b.file("model.pt"));
  const Points x = test::gaussian_points(9, 2, 4);
  const std::vector<int64_t> labels = {0, 1, 2, 0, 1, 2, 0, 1, 2};
  std::vector<float> ua(18), ub(18);
  ma.mean_velocity(0.1, 0.8, x, ua, ctx, {labels, 1.5});
  mb.mean_velocity(0.1, 0.8, x, ub, ctx, {labels, 1.5});
  EXPECT_EQ(ua, ub);
}

TEST(CliConditional, TrainSampleEveryClassAndRefuseBadRequests) {
  TempDir dir;
  const std::string run = dir.file("run");
  auto r = run_cli("train --data digits --conditional --coupling exact --steps 30 --batch 64 --width 32 --depth 1 -q --out " + run);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_cli("sample --model " + run + "/model.pt --class all --n 3 --guidance 2 --steps 2 --png " + dir.file("g.png") +
              " --labels-out " + dir.file("l.npy") + " --out " + dir.file("x.npy"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"nfe\":4"), std::string::npos) << r.out;  // 2 steps x 2 passes
  const Points x = read_points_npy(dir.file("x.npy"), "x");
  EXPECT_EQ(x.n, 30);
  const auto l = read_int64_npy(dir.file("l.npy"), "l");
  ASSERT_EQ(l.size(), 30u);
  EXPECT_EQ(l.front(), 0);
  EXPECT_EQ(l.back(), 9);
  const std::string model = run + "/model.pt", out = " --out " + dir.file("y.npy");
  for (const auto& [args, fragment] : std::vector<std::pair<std::string, std::string>>{
           {"--class 10", "--class"}, {"--class -1", "--class"}, {"--class two", "--class"},
           {"--guidance 2", "--guidance"}, {"--class all --noise " + dir.file("x.npy"), "--class"}}) {
    r = run_cli("sample --model " + model + " " + args + out);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.out;
    EXPECT_NE(r.out.find(fragment), std::string::npos) << args << ": " << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("y.npy")));
  // Training refusals: no labels, labels of the wrong length, bf16 MeanFlow, a penalty without classes.
  write_npy(dir.file("y2.npy"), std::vector<float>(20, 0.5f), {10, 2});
  write_npy(dir.file("l3.npy"), std::vector<int64_t>{0, 1, 2}, {3});
  for (const auto& [args, fragment] : std::vector<std::pair<std::string, std::string>>{
           {"--data " + dir.file("y2.npy") + " --conditional", "--conditional"},
           {"--data " + dir.file("y2.npy") + " --labels " + dir.file("l3.npy"), "--labels"},
           {"--data digits --labels " + dir.file("l3.npy"), "--labels"},
           {"--meanflow --precision bf16", "--precision"},
           {"--coupling semidiscrete --class-penalty 2", "--class-penalty"},
           {"--conditional --data digits --label-dropout 1", "--label-dropout"},
           {"--meanflow --mf-ratio 1.5", "--mf-ratio"}}) {
    r = run_cli("train " + args + " --steps 2 -q --out " + dir.file("bad"));
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.out;
    EXPECT_NE(r.out.find(fragment), std::string::npos) << args << ": " << r.out;
  }
  // MeanFlow through the CLI: euler = jumps (NFE = steps), dopri5 integrates u(x, t, t).
  r = run_cli("train --meanflow --steps 20 --batch 64 -q --out " + dir.file("mf"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_cli("sample --model " + dir.file("mf") + "/model.pt --n 50 --steps 2 --out " + dir.file("m.npy"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"nfe\":2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("meanflow jumps"), std::string::npos) << r.out;
  r = run_cli("sample --model " + dir.file("mf") + "/model.pt --n 50 --solver dopri5 --out " + dir.file("m.npy"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

}  // namespace
}  // namespace otgen
