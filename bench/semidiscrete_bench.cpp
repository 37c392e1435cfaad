// Semidiscrete OT per-step cost against one engine gradient call, on Fashion-MNIST (60000 x 784) at
// batch 1024 (or a synthetic (N, d) set: OTGEN_SDOT_BENCH_N / _D when the dataset is missing).
//   BM_EngineArgmax        one float32 row_argmax call (the eps = 0 gradient) on fixed noise
//   BM_ScreenArgmax/g      the same search through the int8 screen (otgen/kernels/lattice.h; Fashion-MNIST is
//                          8-bit data), which the eps = 0 fit uses when the CPU has AVX-512 VNNI;
//                          g = 0: a random potential, 1: a converged one (OTGEN_SDOT_BENCH_G, default
//                          docs/results/fmnist_g_eps0.npy), whose crowded rows are the screen's hard case
//   BM_EngineSoftmaxSums   one softmax_column_sums call (the eps > 0 gradient)
//   BM_FitSteps/mode/steps SemidiscreteOT::fit with `steps` steps and no chi2 check: fresh noise, the
//                          optimiser, the averaging and the bookkeeping included. mode 0 = eps 0 from
//                          the random g, 1 = eps 0.5, 2 = eps 0 in float32 (screen off), 3 = eps 0
//                          warm-started from the converged g. The per-step cost is
//                          (time(11 steps) - time(1 step)) / 10: the fit's setup (data checks, |y|^2,
//                          building the screen) is paid once per fit, not per step.
// The ratio per-step cost / engine call is the overhead of everything that is not the engine.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "otgen/data/data.h"
#include "otgen/core/error.h"
#include "otgen/kernels/lattice.h"
#include "otgen/core/npy.h"
#include "otgen/core/rng.h"
#include "otgen/kernels/scores.h"
#include "otgen/ot/semidiscrete.h"

namespace {

constexpr int64_t kBatch = 1024;

struct Setup {
  otgen::Points y, x;
  std::vector<float> g, h, log_b;
  std::vector<float> g_conv, h_conv;  // a converged potential, when its file is there
  otgen::Context ctx;
  Setup() {
    ctx.quiet = true;
    try {
      y = otgen::load_dataset("fashion-mnist").x;
    } catch (const otgen::Error&) {
      const int64_t n = std::getenv("OTGEN_SDOT_BENCH_N") ? std::atoll(std::getenv("OTGEN_SDOT_BENCH_N")) : 20000;
      const int64_t d = std::getenv("OTGEN_SDOT_BENCH_D") ? std::atoll(std::getenv("OTGEN_SDOT_BENCH_D")) : 784;
      y = otgen::Points(n, d);
      otgen::Rng(1).fill_normal(y.data);
    }
    x = otgen::sdot_noise(kBatch, y.d, 7, ctx);
    otgen::Rng r(2);
    g.resize(y.n);
    for (auto& v : g) v = static_cast<float>(0.1 * r.normal());
    const auto nrm = otgen::squared_norms(y);
    h.resize(y.n);
    for (int64_t j = 0; j < y.n; ++j) h[j] = g[j] - 0.5f * nrm[j];
    log_b.assign(y.n, static_cast<float>(-std::log(static_cast<double>(y.n))));
    const char* gp = std::getenv("OTGEN_SDOT_BENCH_G");
    const std::string path = gp ? gp : "docs/results/fmnist_g_eps0.npy";
    try {
      const auto a = otgen::read_vector_npy(path, "OTGEN_SDOT_BENCH_G");
      if (static_cast<int64_t>(a.size()) == y.n) {
        g_conv.assign(a.begin(), a.end());
        h_conv.resize(y.n);
        for (int64_t j = 0; j < y.n; ++j) h_conv[j] = g_conv[j] - 0.5f * nrm[j];
      }
    } catch (const otgen::Error&) {
    }
  }
};

Setup& setup() {
  static Setup s;
  return s;
}

void BM_EngineArgmax(benchmark::State& state) {
  auto& s = setup();
  std::vector<int64_t> idx(kBatch);
  std::vector<float> val(kBatch);
  for (auto _ : state) {
    otgen::row_argmax({s.x, s.y, s.h}, idx, val, s.ctx);
    benchmark::DoNotOptimize(idx.data());
  }
  state.counters["N"] = static_cast<double>(s.y.n);
}

void BM_ScreenArgmax(benchmark::State& state) {
  auto& s = setup();
  const auto lattice = otgen::LatticeColumns::build(s.y, s.ctx);
  if (!lattice) {
    state.SkipWithError("no int8 screen: data not on an 8-bit lattice or no AVX-512 VNNI");
    return;
  }
  if (state.range(0) == 1 && s.h_conv.empty()) {
    state.SkipWithError("no converged potential (OTGEN_SDOT_BENCH_G)");
    return;
  }
  const auto& h = state.range(0) == 1 ? s.h_conv : s.h;
  std::vector<int64_t> idx(kBatch);
  std::vector<float> val(kBatch);
  for (auto _ : state) {
    otgen::row_argmax({s.x, s.y, h}, *lattice, idx, val, s.ctx);
    benchmark::DoNotOptimize(idx.data());
  }
}

void BM_EngineSoftmaxSums(benchmark::State& state) {
  auto& s = setup();
  std::vector<double> cs(s.y.n);
  std::vector<float> lse(kBatch);
  for (auto _ : state) {
    otgen::softmax_column_sums({s.x, s.y, s.h}, 1.0f / 0.5f, s.log_b, cs, lse, s.ctx);
    benchmark::DoNotOptimize(cs.data());
  }
}

void BM_FitSteps(benchmark::State& state) {
  auto& s = setup();
  otgen::SemidiscreteOT::Options o;
  const int64_t mode = state.range(0);
  o.epsilon = mode == 1 ? 0.5 : 0.0;
  o.engine.int8_screen = mode != 2;
  o.batch_size = kBatch;
  o.steps = state.range(1);
  o.chi2_every = 0;  // no check: the per-step cost only
  o.log_every = o.steps;
  if (mode == 3) {
    if (s.g_conv.empty()) {
      state.SkipWithError("no converged potential (OTGEN_SDOT_BENCH_G)");
      return;
    }
    o.optimizer = otgen::SdotOptimizer::Adam;  // the end of a real run: small steps near the optimum
    o.lr = o.lr_final = 0.01;
  }
  const otgen::SemidiscreteOT ot(o);
  for (auto _ : state) {
    auto res = ot.fit(s.y, {}, s.ctx, {}, mode == 3 ? s.g_conv : s.g);
    benchmark::DoNotOptimize(res.g.data());
  }
}

BENCHMARK(BM_EngineArgmax)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->Iterations(3);
BENCHMARK(BM_ScreenArgmax)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->Iterations(3);
BENCHMARK(BM_EngineSoftmaxSums)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->Iterations(3);
BENCHMARK(BM_FitSteps)->ArgsProduct({{0, 1, 2, 3}, {1, 11}})->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
