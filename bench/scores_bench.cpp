// Score engine benchmarks on the real workload: x = 1024 N(0, I) draws, y = Fashion-MNIST train
// (60000 x 784, scaled to [-1, 1]; a random y of the same shape with OTGEN_BENCH_RANDOM_Y=1 or when the
// dataset is missing), h random. Anchors measured in the same run: one OpenBLAS SGEMM of the full
// shape (the roofline), the engine's own tiled SGEMM without a reduction, and Faiss IndexFlatIP k=1
// on augmented vectors [x; 1], [y; h].
//
// Before the benchmarks, main() measures the peak resident memory added by one softmax_column_sums
// call (getrusage ru_maxrss before/after) and prints it.
// GCC 12 warns inside its own _mm512_reduce_* (an undefined-start idiom): not ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/amx_tiles.h"
#include "kernels/tile_engine.h"
#include "otgen/data/data.h"
#include "otgen/core/error.h"
#include "otgen/kernels/bf16_columns.h"
#include "otgen/kernels/lattice.h"
#include "otgen/core/rng.h"
#include "otgen/kernels/scores.h"

#ifdef OTGEN_HAVE_FAISS
#include <faiss/IndexFlat.h>
#endif

namespace {

using namespace otgen;

constexpr int64_t kN = 1024, kM = 60000, kD = 784;

struct Workload {
  Points x, y;
  std::vector<float> h;
  std::string y_source;
};

Workload& workload() {
  static Workload w = [] {
    Workload w;
    w.x = Points(kN, kD);
    Rng rng(1);
    rng.fill_normal(std::span<float>(w.x.data));
    const char* rnd = std::getenv("OTGEN_BENCH_RANDOM_Y");
    bool loaded = false;
    if (!(rnd && std::string(rnd) == "1")) {
      try {
        Dataset ds = load_dataset("fashion-mnist");
        w.y = std::move(ds.x);
        w.y_source = "fashion-mnist train";
        loaded = true;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "fashion-mnist not loaded (%s): random y\n", e.what());
      }
    }
    if (!loaded) {
      w.y = Points(kM, kD);
      Rng ry(2);
      for (auto& v : w.y.data) v = static_cast<float>(2 * ry.uniform() - 1);
      w.y_source = "random uniform[-1, 1]";
    }
    // h_j = g_j - |y_j|^2 / 2 with a random potential g: the semidiscrete scores.
    const std::vector<float> yn = squared_norms(w.y);
    Rng rh(3);
    w.h.resize(static_cast<size_t>(w.y.n));
    for (int64_t j = 0; j < w.y.n; ++j) w.h[j] = static_cast<float>(rh.normal() - 0.5 * yn[j]);
    return w;
  }();
  return w;
}

double gemm_flops() { return 2.0 * kN * static_cast<double>(workload().y.n) * kD; }

void set_rate(benchmark::State& st) {
  st.counters["GFLOPs"] =
      benchmark::Counter(gemm_flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Threads of every benchmark: OTGEN_BENCH_THREADS, default 2 (both cores of the reference machine).
int bench_threads() {
  const char* t = std::getenv("OTGEN_BENCH_THREADS");
  return t ? std::max(1, std::atoi(t)) : 2;
}
Context ctx2() { return Context{bench_threads(), 0, true}; }

// Engine options of every benchmark: defaults, or OTGEN_BENCH_TILE_ROWS / _TILE_COLS / _BUFFER_MIB for tuning.
ScoreOptions bench_opt() {
  ScoreOptions opt;
  if (const char* r = std::getenv("OTGEN_BENCH_TILE_ROWS")) opt.tile_rows = std::atol(r);
  if (const char* c = std::getenv("OTGEN_BENCH_TILE_COLS")) opt.tile_cols = std::atol(c);
  if (const char* b = std::getenv("OTGEN_BENCH_BUFFER_MIB")) opt.buffer_bytes = std::atol(b) << 20;
  return opt;
}

// The roofline: one multi-threaded OpenBLAS SGEMM (2 threads) of the full 1024 x 60000 output.
void BM_SgemmFull(benchmark::State& st) {
  auto& w = workload();
  std::vector<float> c(static_cast<size_t>(kN * w.y.n));
  openblas_set_num_threads(bench_threads());
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kN, static_cast<int>(w.y.n), kD, 1.0f, w.x.data.data(), kD,
                w.y.data.data(), kD, 0.0f, c.data(), static_cast<int>(w.y.n));
    benchmark::DoNotOptimize(c.data());
  }
  set_rate(st);
}

// The engine's tiling and threading with an empty reduction: what the reducers can reach at best.
void BM_SgemmTiled(benchmark::State& st) {
  auto& w = workload();
  const ScoreOptions opt = bench_opt();
  const kernels::Tiling t(kN, w.y.n, opt, false);
  const kernels::BlockComputer bc(w.x, w.y, kernels::BlockKind::Dot, opt);
  for (auto _ : st)
    kernels::run_row_reduction(
        bc, t, kN, ctx2(), [](int64_t, float* s, int64_t, int64_t, int64_t) { benchmark::DoNotOptimize(s); },
        [](int64_t, int64_t) {});
  set_rate(st);
}

// row_argmax on the float32 path (auto would take the bf16 screen on an AVX512-BF16 CPU).
void BM_RowArgmax(benchmark::State& st) {
  auto& w = workload();
  std::vector<int64_t> idx(kN);
  std::vector<float> val(kN);
  ScoreOptions opt = bench_opt();
  opt.path = EnginePath::Fp32;
  for (auto _ : st) row_argmax({w.x, w.y, w.h}, idx, val, ctx2(), opt);
  set_rate(st);
}

// Non-lattice float data of the same shape: y + 1e-3 N(0, 1) (image structure, no 8-bit lattice).
const Points& float_y() {
  static const Points y = [] {
    Points v = workload().y;
    Rng r(4);
    for (auto& a : v.data) a += static_cast<float>(1e-3 * r.normal());
    return v;
  }();
  return y;
}

// argmax on float data through path range(0) (an EnginePath: 1 = fp32, 3 = avx512bf16, 4 = amx).
void BM_FloatArgmax(benchmark::State& st) {
  const auto path = static_cast<EnginePath>(st.range(0));
  if (const std::string why = engine_path_unsupported(path); !why.empty()) {
    st.SkipWithError(why.c_str());
    return;
  }
  auto& w = workload();
  const Points& y = float_y();
  std::vector<int64_t> idx(kN);
  std::vector<float> val(kN);
  ScoreOptions opt = bench_opt();
  opt.path = path;
  for (auto _ : st) row_argmax({w.x, y, w.h}, idx, val, ctx2(), opt);
  st.SetLabel(std::string(engine_path_name(argmax_path(y.n, kD, opt))));
  set_rate(st);
}

// The bf16 screen with its columns packed once (as the semidiscrete fit and map keep them): path range(0).
void BM_PackedBf16Argmax(benchmark::State& st) {
  const auto path = static_cast<EnginePath>(st.range(0));
  auto& w = workload();
  const Points& y = float_y();
  const auto columns = Bf16Columns::build(y, ctx2(), path);
  if (!columns) {
    st.SkipWithError(engine_path_unsupported(path).c_str());
    return;
  }
  std::vector<int64_t> idx(kN);
  std::vector<float> val(kN);
  for (auto _ : st) row_argmax({w.x, y, w.h}, *columns, idx, val, ctx2());
  set_rate(st);
}

// The same search through the int8 screen (otgen/kernels/lattice.h): Fashion-MNIST is 8-bit data.
// range(0): 0 = the VNNI kernel, 1 = the AMX-INT8 kind.
void BM_ScreenArgmax(benchmark::State& st) {
  auto& w = workload();
  const bool amx = st.range(0) == 1;
  const auto lattice = LatticeColumns::build(w.y, ctx2(), amx);
  if (!lattice || lattice->amx() != amx) {
    st.SkipWithError("no int8 screen of this kind (data not on an 8-bit lattice, or the CPU lacks VNNI / AMX-INT8)");
    return;
  }
  std::vector<int64_t> idx(kN);
  std::vector<float> val(kN);
  for (auto _ : st) row_argmax({w.x, w.y, w.h}, *lattice, idx, val, ctx2());
  set_rate(st);
}

// The instruction peak of a path on this machine, in the same run: 24 independent accumulators per
// thread (no loads), float32 FMA (range 0) or vdpbf16ps (range 1), GFLOP/s over bench_threads threads.
template <class Step>
double peak_loop(Step step, int64_t iters) {
  double sink = 0;
#pragma omp parallel num_threads(bench_threads()) reduction(+ : sink)
  sink += step(iters);
  return sink;
}
__attribute__((target("avx512f"))) double fma_chains(int64_t iters) {
  __m512 c[24];
  for (int r = 0; r < 24; ++r) c[r] = _mm512_set1_ps(static_cast<float>(r));
  __m512 a = _mm512_set1_ps(1.0f);
  const __m512 b = _mm512_set1_ps(1e-9f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 24
    for (int r = 0; r < 24; ++r) c[r] = _mm512_fmadd_ps(a, b, c[r]);
    __asm__ volatile("" : "+v"(a));
  }
  for (int r = 1; r < 24; ++r) c[0] = _mm512_add_ps(c[0], c[r]);
  return _mm512_reduce_add_ps(c[0]);
}
__attribute__((target("avx512f,avx512bf16"))) double bf16_chains(int64_t iters) {
  __m512 c[24];
  for (int r = 0; r < 24; ++r) c[r] = _mm512_set1_ps(static_cast<float>(r));
  __m512i ai = _mm512_set1_epi32(0x3f803f80);  // bf16 pairs (1, 1)
  for (int64_t i = 0; i < iters; ++i) {
    const __m512bh a = reinterpret_cast<const __m512bh&>(ai);
#pragma GCC unroll 24
    for (int r = 0; r < 24; ++r) c[r] = _mm512_dpbf16_ps(c[r], a, a);
    __asm__ volatile("" : "+v"(ai));
  }
  for (int r = 1; r < 24; ++r) c[0] = _mm512_add_ps(c[0], c[r]);
  return _mm512_reduce_add_ps(c[0]);
}
// AMX-BF16: 4 independent 16 x 16 accumulator tiles, sources loaded once (16 x 16 x 32 x 2 flop each).
__attribute__((target("amx-tile,amx-bf16"))) double amx_chains(int64_t iters) {
  alignas(64) static const uint16_t zeros[16 * 32] = {};  // the rate does not depend on the values
  alignas(64) float out[16 * 16];
  _tile_loadconfig(&kernels::kAmxTiles);
  _tile_loadd(4, zeros, 64);
  _tile_loadd(5, zeros, 64);
  _tile_loadd(6, zeros, 64);
  _tile_loadd(7, zeros, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t i = 0; i < iters / 16; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  _tile_release();
  return out[0];
}
// range 0: float32 FMA, 1: vdpbf16ps, 2: AMX-BF16 tiles.
void BM_Peak(benchmark::State& st) {
  const int kind = static_cast<int>(st.range(0));
  const EnginePath path = kind == 0 ? EnginePath::Vnni : kind == 1 ? EnginePath::Avx512Bf16 : EnginePath::Amx;
  if (const std::string why = engine_path_unsupported(path); !why.empty()) {
    st.SkipWithError(why.c_str());
    return;
  }
  constexpr int64_t kIters = 4000000;
  auto* chains = kind == 0 ? fma_chains : kind == 1 ? bf16_chains : amx_chains;
  for (auto _ : st) benchmark::DoNotOptimize(peak_loop(chains, kIters));
  const double per_iter = kind == 2 ? 4.0 * 16 * 16 * 32 * 2 / 16 : 24.0 * 16 * (kind == 1 ? 4 : 2);
  const double flops = static_cast<double>(kIters) * per_iter * bench_threads();
  st.counters["GFLOPs"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_RowLogsumexp(benchmark::State& st) {
  auto& w = workload();
  std::vector<float> lse(kN);
  for (auto _ : st) row_logsumexp({w.x, w.y, w.h}, 0.1f, {}, lse, ctx2(), bench_opt());
  set_rate(st);
}

void BM_SoftmaxColumnSums(benchmark::State& st) {
  auto& w = workload();
  std::vector<float> lse(kN);
  std::vector<double> cs(static_cast<size_t>(w.y.n));
  ScoreOptions opt = bench_opt();
  if (st.range(0) == 2) opt.buffer_bytes = 0;  // forced two-pass variant
  for (auto _ : st) softmax_column_sums({w.x, w.y, w.h}, 0.1f, {}, cs, lse, ctx2(), opt);
  set_rate(st);
}

void BM_RowGumbelArgmax(benchmark::State& st) {
  auto& w = workload();
  std::vector<int64_t> idx(kN);
  const float scale = static_cast<float>(st.range(0)) / 1000.0f;
  for (auto _ : st) row_gumbel_argmax({w.x, w.y, w.h}, scale, {}, 7, idx, ctx2(), bench_opt());
  set_rate(st);
}

// Low dimension: the WFR particle case (N x N, d = 2), KDE in log space.
void BM_KernelLogsumexpLowDim(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  Points x(n, d);
  Rng rng(5);
  rng.fill_normal(std::span<float>(x.data));
  std::vector<float> out(n);
  ScoreOptions opt;
  if (st.range(2) == 0) opt.direct_max_dim = 0;  // force SGEMM
  for (auto _ : st) kernel_row_logsumexp(x, x, 50.0, {}, out, ctx2(), opt);
  st.counters["pairs_per_s"] = benchmark::Counter(static_cast<double>(n) * n, benchmark::Counter::kIsIterationInvariantRate);
}

#ifdef OTGEN_HAVE_FAISS
void BM_FaissFlatIP(benchmark::State& st) {
  auto& w = workload();
  static std::vector<float> xa, ya;
  if (xa.empty()) {
    xa.resize(static_cast<size_t>(kN * (kD + 1)));
    ya.resize(static_cast<size_t>(w.y.n * (kD + 1)));
    for (int64_t i = 0; i < kN; ++i) {
      std::copy(w.x.row(i), w.x.row(i) + kD, xa.data() + i * (kD + 1));
      xa[i * (kD + 1) + kD] = 1.0f;
    }
    for (int64_t j = 0; j < w.y.n; ++j) {
      std::copy(w.y.row(j), w.y.row(j) + kD, ya.data() + j * (kD + 1));
      ya[j * (kD + 1) + kD] = w.h[j];
    }
  }
  faiss::IndexFlatIP index(kD + 1);
  index.add(w.y.n, ya.data());
  std::vector<float> dist(kN);
  std::vector<faiss::Index::idx_t> lab(kN);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(static_cast<int>(st.range(0)));
  openblas_set_num_threads(bench_threads());
  for (auto _ : st) index.search(kN, xa.data(), 1, dist.data(), lab.data());
  omp_set_num_threads(saved);
  set_rate(st);
}
BENCHMARK(BM_FaissFlatIP)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

BENCHMARK(BM_SgemmFull)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SgemmTiled)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RowArgmax)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ScreenArgmax)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Peak)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FloatArgmax)
    ->Arg(static_cast<int>(EnginePath::Fp32))
    ->Arg(static_cast<int>(EnginePath::Avx512Bf16))
    ->Arg(static_cast<int>(EnginePath::Amx))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_PackedBf16Argmax)
    ->Arg(static_cast<int>(EnginePath::Avx512Bf16))
    ->Arg(static_cast<int>(EnginePath::Amx))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_RowLogsumexp)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SoftmaxColumnSums)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RowGumbelArgmax)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_KernelLogsumexpLowDim)
    ->Args({300, 1, 1})
    ->Args({1000, 2, 1})
    ->Args({1000, 2, 0})
    ->Args({1000, 20, 1})
    ->Args({1000, 20, 0})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// A field of /proc/self/status in KiB (VmRSS, VmHWM), or -1.
long status_kib(const char* field) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  const size_t len = std::strlen(field);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, field, len) == 0 && line[len] == ':') v = std::atol(line + len + 1);
  std::fclose(f);
  return v;
}

// Resets the peak-RSS counter (VmHWM) to the current RSS (Linux >= 4.0).
bool reset_peak_rss() {
  FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  auto& w = workload();
  std::vector<float> lse(kN);
  std::vector<double> cs(static_cast<size_t>(w.y.n));
  if (std::getenv("OTGEN_BENCH_SKIP_MEMORY")) {  // for profiling one benchmark alone
    benchmark::RunSpecifiedBenchmarks();
    return 0;
  }
  const bool reset = reset_peak_rss();
  const long before = status_kib("VmRSS");
  softmax_column_sums({w.x, w.y, w.h}, 0.1f, {}, cs, lse, ctx2(), bench_opt());
  const long after = status_kib("VmHWM");
  if (!reset) std::printf("(could not reset the peak RSS counter: the figure below is an upper bound)\n");
  std::printf("workload: x %lld x %lld N(0, I); y %lld x %lld (%s)\n", static_cast<long long>(kN),
              static_cast<long long>(kD), static_cast<long long>(w.y.n), static_cast<long long>(w.y.d),
              w.y_source.c_str());
  std::printf("peak memory added by softmax_column_sums: %.1f MiB (VmRSS %ld -> VmHWM %ld KiB)\n",
              (after - before) / 1024.0, before, after);
  std::fflush(stdout);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
