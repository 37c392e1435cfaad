// Semidiscrete OT per-step cost against one engine gradient call, on Fashion-MNIST (60000 x 784) at
// batch 1024 (or a synthetic (N, d) set: OTGEN_SDOT_BENCH_N / _D when the dataset is missing).
//   BM_EngineArgmax       one float32 row_argmax call (the eps = 0 gradient) on fixed noise
//   BM_ScreenArgmax       the same search through the int8 screen (otgen/lattice.h; Fashion-MNIST is
//                         8-bit data), which is what the eps = 0 fit uses when the CPU has AVX-512 VNNI
//   BM_EngineSoftmaxSums  one softmax_column_sums call (the eps > 0 gradient)
//   BM_FitSteps/mode      SemidiscreteOT::fit with 10 steps and no chi2 check, per step (fresh noise,
//                         the optimiser, EMA, bookkeeping included): 0 = eps 0, 1 = eps 0.5,
//                         2 = eps 0 with the screen off (float32)
// The ratio fit step / engine call is the overhead of everything that is not the engine.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <vector>

#include "otgen/data.h"
#include "otgen/error.h"
#include "otgen/lattice.h"
#include "otgen/rng.h"
#include "otgen/scores.h"
#include "otgen/semidiscrete.h"

namespace {

constexpr int64_t kBatch = 1024;
constexpr int64_t kFitSteps = 10;

struct Setup {
  otgen::Points y, x;
  std::vector<float> g, h, log_b;
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
  std::vector<int64_t> idx(kBatch);
  std::vector<float> val(kBatch);
  for (auto _ : state) {
    otgen::row_argmax({s.x, s.y, s.h}, *lattice, idx, val, s.ctx);
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
  o.epsilon = state.range(0) == 1 ? 0.5 : 0.0;
  o.engine.int8_screen = state.range(0) != 2;
  o.batch_size = kBatch;
  o.steps = kFitSteps;
  o.chi2_every = 0;  // no check: the per-step cost only
  o.log_every = kFitSteps;
  const otgen::SemidiscreteOT ot(o);
  for (auto _ : state) {
    auto res = ot.fit(s.y, {}, s.ctx, {}, s.g);
    benchmark::DoNotOptimize(res.g.data());
  }
  // Time per fit step (one iteration = kFitSteps steps).
  state.counters["seconds_per_step"] =
      benchmark::Counter(static_cast<double>(kFitSteps), benchmark::Counter::kIsIterationInvariantRate |
                                                             benchmark::Counter::kInvert);
}

BENCHMARK(BM_EngineArgmax)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->Iterations(3);
BENCHMARK(BM_ScreenArgmax)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->Iterations(3);
BENCHMARK(BM_EngineSoftmaxSums)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->Iterations(3);
BENCHMARK(BM_FitSteps)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(5)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
