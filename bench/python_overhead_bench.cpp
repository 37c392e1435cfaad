// The C++ side of the Python call-overhead benchmark (scripts/bench_python.sh): sdot_assign of 1024
// N(0, I) draws against Fashion-MNIST (60000 x 784) with a zero potential, both cores.
#include <benchmark/benchmark.h>

#include "otgen/data/data.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"

namespace {

void BM_SdotAssignCpp(benchmark::State& state) {
  static const otgen::Dataset ds = otgen::load_dataset("fashion-mnist");
  otgen::Points x(1024, ds.x.d);
  otgen::Rng(0).fill_normal(std::span<float>(x.data));
  std::vector<float> g(ds.x.n, 0.0f);
  otgen::SemidiscreteMap map;
  map.y = ds.x.view();
  map.g = g;
  otgen::Context ctx;
  ctx.threads = 2;
  otgen::sdot_prepare(map, ctx);  // as SemidiscreteOT does once (the int8 screen on these 8-bit images)
  for (auto _ : state) benchmark::DoNotOptimize(otgen::sdot_assign(map, x.view(), ctx));
}
BENCHMARK(BM_SdotAssignCpp)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
