// Flow matching (otgen/flow/flow.h): trained fields against the closed-form optimal fields, the pairs the
// trainer sees, export round trips, bit-exact resume after SIGKILL, and CLI refusals.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "otgen/flow/flow.h"
#include "otgen/core/npy.h"
#include "otgen/ot/semidiscrete.h"
#include "test_util.h"

namespace otgen {
namespace {

using namespace otgen::flow;
using test::run_cli;
using test::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

ModelSpec mlp_spec(int64_t d, int64_t width = 64, int64_t depth = 2) {
  ModelSpec s;
  s.dim = d;
  s.width = width;
  s.depth = depth;
  return s;
}

ModelSpec unet_spec(int64_t side, int64_t channels, int64_t C, std::vector<int64_t> mults, int64_t groups) {
  ModelSpec s;
  s.kind = ModelKind::Unet;
  s.image_side = side;
  s.channels = channels;
  s.dim = channels * side * side;
  s.base_channels = C;
  s.mults = std::move(mults);
  s.groups = groups;
  return s;
}

// Velocities of `model` at (t, x) for each t, as one vector.
std::vector<float> velocities(const FlowModel& model, const Points& x, std::initializer_list<double> ts) {
  std::vector<float> all;
  std::vector<float> out(x.data.size());
  for (double t : ts) {
    model.velocity(t, x, out, Context{});
    all.insert(all.end(), out.begin(), out.end());
  }
  return all;
}

TEST(FlowModel, ParameterCountsMatchTheArchitecturesClosedForms) {
  // MLP: (d + E) W + W + (depth - 1)(W^2 + W) + W d + d.
  const int64_t d = 2, W = 128, E = 32;
  ModelSpec s = mlp_spec(d, W, 3);
  EXPECT_EQ(FlowModel::init(s, 0).parameters(), (d + E) * W + W + 2 * (W * W + W) + W * d + d);
  // The U-Net of the PyTorch reference (bench/flow_models_ref.py, counted there by torch): 694561.
  EXPECT_EQ(FlowModel::init(unet_spec(28, 1, 32, {1, 2, 2}, 8), 0).parameters(), 694561);
}

TEST(FlowModel, SaveAndLoadGiveIdenticalVelocities) {
  TempDir dir;
  for (const ModelSpec& s : {mlp_spec(3), unet_spec(8, 2, 8, {1, 2}, 4)}) {
    const FlowModel m = FlowModel::init(s, 7);
    m.save(dir.file("m.pt"));
    const FlowModel back = FlowModel::load(dir.file("m.pt"));
    EXPECT_EQ(back.spec().to_json(), s.to_json());
    EXPECT_EQ(back.parameters(), m.parameters());
    const Points x = test::gaussian_points(5, s.dim, 3);
    EXPECT_EQ(velocities(m, x, {0.0, 0.3, 1.0}), velocities(back, x, {0.0, 0.3, 1.0}));
    EXPECT_FALSE(std::filesystem::exists(dir.file("m.pt.tmp." + std::to_string(getpid()))));
  }
}

TEST(FlowModel, DifferentSeedsGiveDifferentWeightsAndTheSameSeedTheSame) {
  const Points x = test::gaussian_points(4, 2, 1);
  const auto a = velocities(FlowModel::init(mlp_spec(2), 1), x, {0.5});
  EXPECT_EQ(a, velocities(FlowModel::init(mlp_spec(2), 1), x, {0.5}));
  EXPECT_NE(a, velocities(FlowModel::init(mlp_spec(2), 2), x, {0.5}));
}

TEST(FlowModel, LoadRejectsMissingForeignAndCorruptFiles) {
  TempDir dir;
  test::expect_error_contains([&] { FlowModel::load(dir.file("none.pt")); }, "--model");
  write_file_atomic(dir.file("junk.pt"), "not a model");
  test::expect_error_contains([&] { FlowModel::load(dir.file("junk.pt")); }, "could not be read");
  FlowModel::init(mlp_spec(2), 0).save(dir.file("m.pt"));
  const std::string bytes = slurp(dir.file("m.pt"));
  write_file_atomic(dir.file("cut.pt"), bytes.substr(0, bytes.size() / 2));
  test::expect_error_contains([&] { FlowModel::load(dir.file("cut.pt")); }, "--model");
}

TEST(ModelSpec, IntegerFieldsGivenAsHugeFloatsAreRefused) {
  // Fuzzing finding F1 (docs/RELIABILITY.md): the committed input, and the same for TrainOptions.
  const nlohmann::json spec =
      nlohmann::json::parse(slurp(std::string(OTGEN_SOURCE_DIR) + "/tests/data/fuzz_regressions/fuzz_json/int_field_1e69.json"));
  test::expect_error_contains([&] { ModelSpec::from_json(spec); }, "channels");
  nlohmann::json good = mlp_spec(2).to_json();
  EXPECT_NO_THROW(ModelSpec::from_json(good));
  good["mults"] = {1, 2.5};
  test::expect_error_contains([&] { ModelSpec::from_json(good); }, "mults");
  TrainOptions o;
  o.model = mlp_spec(2);
  nlohmann::json j = o.to_json();
  EXPECT_NO_THROW(TrainOptions::from_json(j));
  j["steps"] = 1e30;
  test::expect_error_contains([&] { TrainOptions::from_json(j); }, "steps");
  j["steps"] = 18446744073709551615ull;  // beyond int64
  test::expect_error_contains([&] { TrainOptions::from_json(j); }, "steps");
}

TEST(ModelSpec, ValidateNamesTheOption) {
  ModelSpec s = unet_spec(28, 1, 32, {1, 2, 2, 2}, 8);  // 28 is not divisible by 8
  test::expect_error_contains([&] { s.validate(); }, "fewer --mults");
  s = unet_spec(8, 1, 12, {1, 2}, 8);
  test::expect_error_contains([&] { s.validate(); }, "--channels");
  s = mlp_spec(2);
  s.time_dim = 7;
  test::expect_error_contains([&] { s.validate(); }, "--time-dim");
  TrainOptions o;
  o.model = mlp_spec(2);
  o.steps = 0;
  test::expect_error_contains([&] { o.validate(); }, "--steps");
  o.steps = 10;
  o.weight_decay = 0.1;
  test::expect_error_contains([&] { o.validate(); }, "--optimizer adamw");
  TrainOptions def;
  def.model = mlp_spec(2);
  EXPECT_EQ(TrainOptions::from_json(def.to_json()).to_json(), def.to_json());
}

// Trains an MLP on `y` with independent pairs; returns the model.
FlowModel train_on(const Points& y, int64_t steps, const TempDir& dir, uint64_t seed = 1) {
  TrainOptions o;
  o.model = mlp_spec(y.d, 128, 3);
  o.steps = steps;
  o.batch = 256;
  o.lr = 2e-3;
  o.schedule = LrSchedule::Cosine;
  o.lr_final = 1e-4;
  o.ema_decay = 0.99;
  IndependentCoupling c(CouplingData{y.view(), {}, 0});
  Context ctx;
  ctx.seed = seed;
  ctx.quiet = true;
  const TrainResult r = train_flow(o, CouplingData{y.view(), {}, 0}, c, RunFiles{dir.path.string()}, false, {}, ctx);
  EXPECT_EQ(r.termination, Termination::MaxSteps) << r.message;
  EXPECT_EQ(r.steps, steps);
  return FlowModel::load(dir.file("model.pt"));
}

// Mean over the points of |v_model - v_exact| / |v_exact| at time t.
double relative_field_error(const FlowModel& m, const Points& x, double t,
                            const std::function<void(const float*, float*)>& exact) {
  std::vector<float> v(x.data.size());
  m.velocity(t, x, v, Context{});
  double total = 0;
  for (int64_t i = 0; i < x.n; ++i) {
    std::vector<float> e(x.d);
    exact(x.row(i), e.data());
    double num = 0, den = 0;
    for (int64_t c = 0; c < x.d; ++c) {
      num += std::pow(v[i * x.d + c] - e[c], 2);
      den += std::pow(e[c], 2);
    }
    total += std::sqrt(num / den);
  }
  return total / x.n;
}

TEST(Train, OnePointFieldApproachesTheClosedForm) {
  // For a single data point y the optimal field is v(t, x) = (y - x) / (1 - t).
  TempDir dir;
  const Points y(std::vector<float>{1.5f, -2.0f}, 1, 2);
  const FlowModel m = train_on(y, 1500, dir);
  for (double t : {0.1, 0.5, 0.8}) {
    // Points where p_t has mass: x = (1 - t) z + t y.
    Points x = test::gaussian_points(64, 2, 11);
    for (int64_t i = 0; i < x.n; ++i)
      for (int c = 0; c < 2; ++c) x.row(i)[c] = static_cast<float>((1 - t) * x.row(i)[c] + t * y.row(0)[c]);
    const double err = relative_field_error(m, x, t, [&](const float* p, float* e) {
      for (int c = 0; c < 2; ++c) e[c] = static_cast<float>((y.row(0)[c] - p[c]) / (1 - t));
    });
    EXPECT_LT(err, 0.1) << "t = " << t;
  }
}

TEST(Train, TwoPointFieldApproachesTheSoftmaxMixture) {
  // Two points: v(t, x) = sum_j w_j (y_j - x) / (1 - t), w = softmax_j(-|x - t y_j|^2 / (2 (1 - t)^2)).
  TempDir dir;
  const Points y(std::vector<float>{-2.0f, 0.0f, 2.0f, 1.0f}, 2, 2);
  const FlowModel m = train_on(y, 2500, dir);
  for (double t : {0.2, 0.5, 0.7}) {
    Points x = test::gaussian_points(200, 2, 12);
    for (int64_t i = 0; i < x.n; ++i) {
      const int j = static_cast<int>(i % 2);
      for (int c = 0; c < 2; ++c) x.row(i)[c] = static_cast<float>((1 - t) * x.row(i)[c] + t * y.row(j)[c]);
    }
    const double err = relative_field_error(m, x, t, [&](const float* p, float* e) {
      double lw[2];
      for (int j = 0; j < 2; ++j) {
        double s = 0;
        for (int c = 0; c < 2; ++c) s += std::pow(p[c] - t * y.row(j)[c], 2);
        lw[j] = -s / (2 * (1 - t) * (1 - t));
      }
      const double mx = std::max(lw[0], lw[1]);
      const double w0 = std::exp(lw[0] - mx), w1 = std::exp(lw[1] - mx);
      for (int c = 0; c < 2; ++c)
        e[c] = static_cast<float>((w0 * (y.row(0)[c] - p[c]) + w1 * (y.row(1)[c] - p[c])) / ((w0 + w1) * (1 - t)));
    });
    EXPECT_LT(err, 0.15) << "t = " << t;
  }
}

// Trains a tiny MLP for `steps` steps of `batch` pairs from `c` and hands each step's pairs to `check`;
// returns the number of steps checked.
int64_t check_pairs(const Points& y, const Coupling& c, int64_t steps, int64_t batch, const PairsObserver& check) {
  TempDir dir;
  TrainOptions o;
  o.model = mlp_spec(y.d, 16, 1);
  o.steps = steps;
  o.batch = batch;
  Context ctx;
  ctx.quiet = true;
  int64_t checked = 0;
  train_flow(o, CouplingData{y.view(), {}, 0}, c, RunFiles{dir.path.string()}, false, {}, ctx, {},
             [&](int64_t k, PointsView x0, std::span<const int64_t> target, std::span<const int64_t> labels) {
               EXPECT_EQ(x0.n, batch);
               EXPECT_TRUE(labels.empty());
               check(k, x0, target, labels);
               ++checked;
             });
  return checked;
}

TEST(Train, SemidiscretePairsEqualSdotAssignOnTheSameNoise) {
  const Points y = test::gaussian_points(300, 3, 5, 2.0f);
  std::vector<float> g(300);
  Rng(6).fill_normal(std::span<float>(g));
  SemidiscreteCoupling c(CouplingData{y.view(), {}, 0}, g, 0.0);
  SemidiscreteMap map;
  map.y = y.view();
  map.g = g;
  EXPECT_EQ(check_pairs(y, c, 5, 64,
                        [&](int64_t, PointsView x0, std::span<const int64_t> target, std::span<const int64_t>) {
                          EXPECT_EQ(std::vector<int64_t>(target.begin(), target.end()), sdot_assign(map, x0, Context{}));
                        }),
            5);
}

TEST(Train, BatchOTPairsArePermutationsOfDistinctDataPoints) {
  const Points y = test::gaussian_points(500, 2, 8);
  BatchOTCoupling c(CouplingData{y.view(), {}, 0});
  EXPECT_EQ(check_pairs(y, c, 4, 128,
                        [&](int64_t, PointsView, std::span<const int64_t> target, std::span<const int64_t>) {
                          EXPECT_EQ(std::set<int64_t>(target.begin(), target.end()).size(), target.size());
                        }),
            4);
}

TEST(Train, HistoryAndCheckpointAreWrittenAndNanLossStops) {
  TempDir dir;
  const Points y = test::gaussian_points(100, 2, 9);
  const CouplingData data{y.view(), {}, 0};
  IndependentCoupling c(data);
  TrainOptions o;
  o.model = mlp_spec(2, 16, 1);
  o.steps = 30;
  o.log_every = 10;
  Context ctx;
  ctx.quiet = true;
  const auto r = train_flow(o, data, c, RunFiles{dir.path.string()}, false, {}, ctx);
  ASSERT_EQ(r.history.size(), 3u);
  EXPECT_EQ(r.history.back().step, 30);
  EXPECT_TRUE(std::filesystem::exists(dir.file("checkpoint.pt")));
  EXPECT_EQ(checkpoint_options(dir.file("checkpoint.pt")).to_json(), o.to_json());
  // A learning rate of 1e30 blows the weights up: the run stops with NumericalFailure.
  TempDir dir2;
  o.lr = 1e30;
  const auto bad = train_flow(o, data, c, RunFiles{dir2.path.string()}, false, {}, ctx);
  EXPECT_EQ(bad.termination, Termination::NumericalFailure);
  EXPECT_NE(bad.message.find("--lr"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir2.file("model.pt")));
}

TEST(Train, Bf16RunsWhereTheCpuHasItAndFallsBackToFp32Elsewhere) {
  TempDir dir;
  const Points y = test::gaussian_points(64, 64, 9);
  const CouplingData data{y.view(), {}, 0};
  IndependentCoupling c(data);
  TrainOptions o;
  o.model = unet_spec(8, 1, 8, {1, 2}, 4);
  o.steps = 5;
  o.batch = 16;
  o.precision = Precision::Bf16;
  Context ctx;
  ctx.quiet = true;
  const auto r = train_flow(o, data, c, RunFiles{dir.path.string()}, false, {}, ctx);
  EXPECT_EQ(r.termination, Termination::MaxSteps) << r.message;
  EXPECT_TRUE(std::isfinite(r.history.back().loss));
  EXPECT_EQ(r.precision, cpu_has_bf16() ? Precision::Bf16 : Precision::Fp32);
  EXPECT_EQ(r.precision_note.empty(), cpu_has_bf16());
}

// ------------------------------------------------------------------------------------------- CLI

TEST(CliTrain, ResumeAfterSigkillOrCtrlCEqualsTheUninterruptedRun) {
  TempDir dir;
  const std::string common = " --data 8gaussians --n 1024 --steps 2000 --batch 128 --width 64 --depth 2 --seed 4"
                             " --threads 2 -q --checkpoint-every 100";
  ASSERT_EQ(run_cli("train" + common + " --out " + dir.file("full")).exit_code, 0);

  // The same run, killed with SIGKILL once it has written a checkpoint, then resumed.
  const std::string killed = dir.file("killed");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string cmd = std::string("exec ") + OTGEN_CLI_PATH + " train" + common + " --out " + killed + " >/dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(killed + "/checkpoint.pt") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before it could be killed";
  EXPECT_FALSE(std::filesystem::exists(killed + "/model.pt"));
  const auto r = run_cli("train --resume " + killed + " --threads 2 -q");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto rec = nlohmann::json::parse(slurp(killed + "/record.json"));
  EXPECT_GT(rec["result"]["resumed_from"].get<int64_t>(), 0);
  EXPECT_EQ(rec["result"]["steps"].get<int64_t>(), 2000);

  // Ctrl-C (SIGINT): the run stops after its step, writes checkpoint and model, exits 130; resumed, it
  // also equals the uninterrupted run.
  const std::string stopped = dir.file("stopped");
  const pid_t pid2 = fork();
  ASSERT_GE(pid2, 0);
  if (pid2 == 0) {
    const std::string cmd = std::string("exec ") + OTGEN_CLI_PATH + " train" + common + " --out " + stopped + " >/dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  while (!std::filesystem::exists(stopped + "/checkpoint.pt") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid2, SIGINT);
  waitpid(pid2, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 130) << "the run finished before it could be interrupted";
  EXPECT_TRUE(std::filesystem::exists(stopped + "/model.pt"));
  const auto rec2 = nlohmann::json::parse(slurp(stopped + "/record.json"));
  EXPECT_LT(rec2["result"]["steps"].get<int64_t>(), 2000);
  ASSERT_EQ(run_cli("train --resume " + stopped + " --threads 2 -q").exit_code, 0);

  // Same weights: the same samples from the same noise, bit for bit.
  for (const std::string run : {"full", "killed", "stopped"})
    ASSERT_EQ(run_cli("sample --model " + dir.file(run) + "/model.pt --n 64 --steps 3 --seed 2 --out " +
                      dir.file(run + ".npy"))
                  .exit_code,
              0);
  EXPECT_EQ(slurp(dir.file("full.npy")), slurp(dir.file("killed.npy")));
  EXPECT_EQ(slurp(dir.file("full.npy")), slurp(dir.file("stopped.npy")));
}

TEST(CliTrain, BadInputsExitWithCodeTwoAndOverwriteNothing) {
  TempDir dir;
  Points y = test::gaussian_points(50, 2, 1);
  write_npy(dir.file("y.npy"), y);
  y.data[7] = std::nanf("");
  write_npy(dir.file("nan.npy"), y);
  write_npy(dir.file("g.npy"), std::vector<float>(49, 0.0f), {49});
  write_file_atomic(dir.file("junk.pt"), "junk");
  write_file_atomic(dir.file("keep.npy"), "precious");
  ASSERT_EQ(run_cli("train --data " + dir.file("y.npy") + " --steps 20 -q --out " + dir.file("run")).exit_code, 0);
  const std::string model = dir.file("run") + "/model.pt";
  const std::string model_bytes = slurp(model);
  // A run whose checkpoint is corrupt (truncated): --resume refuses it and keeps its files.
  ASSERT_EQ(run_cli("train --data " + dir.file("y.npy") + " --steps 20 -q --out " + dir.file("cut")).exit_code, 0);
  const std::string ckpt = dir.file("cut") + "/checkpoint.pt";
  write_file_atomic(ckpt, slurp(ckpt).substr(0, 300));
  const std::string cut_model = slurp(dir.file("cut") + "/model.pt"), cut_ckpt = slurp(ckpt);
  const std::string train = "train --data " + dir.file("y.npy") + " -q ";
  struct Case {
    std::string args, fragment;
  };
  const Case cases[] = {
      {"train --data " + dir.file("nan.npy") + " --out " + dir.file("r1"), "--data"},
      {train + "--coupling semidiscrete --potential " + dir.file("g.npy") + " --out " + dir.file("r2"), "--potential"},
      {train + "--coupling magic --out " + dir.file("r3"), "--coupling"},
      {train + "--steps 0 --out " + dir.file("r4"), "--steps"},
      {train + "--model unet --out " + dir.file("r5"), "--model"},
      {train + "--out " + dir.file("keep.npy"), "--out"},
      {"train --resume " + dir.file("nothing"), "--resume"},
      {"train --resume " + dir.file("cut") + " --steps 40", "--resume"},
      {"train --data no-such-dataset --out " + dir.file("r6"), "no-such-dataset"},
      {"sample --model " + model + " --solver rk5 --out " + dir.file("keep.npy"), "--solver"},
      {"sample --model " + model + " --steps 0 --out " + dir.file("keep.npy"), "--steps"},
      {"sample --model " + dir.file("missing.pt") + " --out " + dir.file("keep.npy"), "--model"},
      {"sample --model " + dir.file("junk.pt") + " --out " + dir.file("keep.npy"), "--model"},
      {"sample --model " + model + " --out " + model, "--out"},
      {"sample --model " + model + " --n 200000000 --out " + dir.file("keep.npy"), "--n"},
      {train + "--batch 100000000 --out " + dir.file("r7"), "--batch"},
      {"sample --model " + model + " --n 10 --png " + dir.file("x.png") + " --out " + dir.file("nodir/x.npy"), "--out"},
  };
  for (const Case& c : cases) {
    const auto r = run_cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.fragment), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
  }
  EXPECT_EQ(slurp(dir.file("keep.npy")), "precious");
  EXPECT_EQ(slurp(model), model_bytes);
  EXPECT_EQ(slurp(dir.file("cut") + "/model.pt"), cut_model);
  EXPECT_EQ(slurp(ckpt), cut_ckpt);
  for (const char* r : {"r1", "r2", "r3", "r4", "r5", "r6", "r7"}) EXPECT_FALSE(std::filesystem::exists(dir.file(r))) << r;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.png")));
}

TEST(CliSample, SolversReportExactNfeAndWriteTheRequestedShape) {
  TempDir dir;
  FlowModel::init(mlp_spec(3), 1).save(dir.file("m.pt"));
  struct Case {
    std::string solver;
    int64_t steps, nfe;
  };
  for (const Case& c : {Case{"euler", 4, 4}, Case{"midpoint", 4, 8}, Case{"heun", 3, 6}, Case{"rk4", 2, 8}}) {
    const auto r = run_cli("sample --model " + dir.file("m.pt") + " --n 17 --solver " + c.solver + " --steps " +
                           std::to_string(c.steps) + " --out " + dir.file("x.npy"));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(nlohmann::json::parse(r.out)["nfe"].get<int64_t>(), c.nfe) << c.solver;
    const Points x = read_points_npy(dir.file("x.npy"), "x");
    EXPECT_EQ(x.n, 17);
    EXPECT_EQ(x.d, 3);
  }
}

}  // namespace
}  // namespace otgen
