// The score engine (otgen/kernels/scores.h): every row reduction is a reducer type (kernels/reducers.h, or
// here beside its entry point) run by kernels::reduce_rows over the blocks of the tile engine.
#include "otgen/kernels/scores.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include <omp.h>

#include "kernels/bf16_screen.h"
#include "kernels/reducers.h"
#include "kernels/tile_engine.h"
#include "otgen/kernels/bf16_columns.h"
#include "otgen/core/blas_threads.h"
#include "otgen/core/error.h"
#include "otgen/kernels/lattice.h"
#include "otgen/core/rng.h"

namespace otgen {

using kernels::BlockComputer;
using kernels::BlockKind;
using kernels::exp_accumulate;
using kernels::exp_sum;
using kernels::kNegInfD;
using kernels::kNegInfF;
using kernels::Tiling;

void ScoreOptions::validate() const {
  require(tile_rows > 0, "tile_rows", tile_rows, "a positive integer");
  require(tile_cols > 0, "tile_cols", tile_cols, "a positive integer");
  require(direct_max_dim >= 0, "direct_max_dim", direct_max_dim, "a non-negative integer");
  require(buffer_bytes >= 0, "buffer_bytes", buffer_bytes, "a non-negative integer");
  require_engine_path(path, "engine");
}

EnginePath argmax_path(int64_t m, int64_t d, const ScoreOptions& opt) {
  if (opt.path != EnginePath::Auto) return opt.path;
  if (d < kBf16MinDim) return EnginePath::Fp32;
  // AMX-BF16 tiles run ten times float32 FMA's rate: the screen wins once its fixed costs (packing the
  // rows, the exact re-scores) are paid. vdpbf16ps peaks at half the FMA rate on the Xeons measured
  // (docs/scores.md): that screen beats float32 only when the SGEMM runs OpenBLAS's non-FMA kernels.
  if (engine_path_unsupported(EnginePath::Amx).empty() && m * d > kAmxMinWork) return EnginePath::Amx;
  const bool bf16 = engine_path_unsupported(EnginePath::Avx512Bf16).empty() && !blas_has_fma_kernels();
  return bf16 ? EnginePath::Avx512Bf16 : EnginePath::Fp32;
}

bool ScoreOptions::builds_int8_screen(int64_t m, int64_t d) const {
  const bool forced = path == EnginePath::Vnni || path == EnginePath::Amx;
  return uses_int8_screen() && (forced || m * d >= kInt8MinWork || !blas_has_fma_kernels());
}

bool ScoreOptions::int8_screen_on_amx() const {
  return path == EnginePath::Amx || (path == EnginePath::Auto && engine_path_unsupported(EnginePath::Amx).empty());
}

void ScoreProblem::validate() const {
  require(x.n >= 0 && x.d >= 1, "x", "shape (" + std::to_string(x.n) + ", " + std::to_string(x.d) + ")", "n >= 0 and d >= 1");
  require(y.n >= 0 && y.d >= 1, "y", "shape (" + std::to_string(y.n) + ", " + std::to_string(y.d) + ")", "m >= 0 and d >= 1");
  require(x.d == y.d, "y", "dimension " + std::to_string(y.d), "the dimension of x, " + std::to_string(x.d));
  require(h.empty() || static_cast<int64_t>(h.size()) == y.n, "h", "length " + std::to_string(h.size()),
          "empty or the number of y points, " + std::to_string(y.n));
  for (size_t j = 0; j < h.size(); ++j)
    if (std::isnan(h[j]) || h[j] == std::numeric_limits<float>::infinity())
      fail_argument("h", to_text(h[j]) + " at index " + std::to_string(j), "finite values or -infinity (masked)");
}

namespace {

// Every finite value of gumbel_at is <= 53 ln 2 = 36.7368 (u <= 1 - 2^-53); a little slack on top.
constexpr double kGumbelBound = 36.75;

void check_len(std::string_view name, size_t got, int64_t want) {
  require(static_cast<int64_t>(got) == want, name, "length " + std::to_string(got), "length " + std::to_string(want));
}

void check_log_weights(std::string_view name, std::span<const float> log_b, int64_t m) {
  require(log_b.empty() || static_cast<int64_t>(log_b.size()) == m, name, "length " + std::to_string(log_b.size()),
          "empty or " + std::to_string(m));
  for (size_t j = 0; j < log_b.size(); ++j)
    if (std::isnan(log_b[j]) || log_b[j] == std::numeric_limits<float>::infinity())
      fail_argument(name, to_text(log_b[j]) + " at index " + std::to_string(j), "finite values or -infinity (masked)");
}

void check_scale(float scale) { require(scale > 0 && std::isfinite(scale), "scale", scale, "a positive finite number"); }

void require_some_column(const ScoreProblem& p, std::span<const float> log_b) {
  if (p.x.n == 0) return;
  bool any = false;
  for (int64_t j = 0; j < p.y.n && !any; ++j)
    any = (p.h.empty() || !std::isinf(p.h[j])) && (log_b.empty() || !std::isinf(log_b[j]));
  require(any, "y", std::to_string(p.y.n) + " points, all masked", "at least one unmasked point");
}

// The checks of every call on scale * S_ij + log_b_j: the problem, the options, scale and log_b.
void validate_scaled(const ScoreProblem& p, const ScoreOptions& opt, float scale, std::span<const float> log_b) {
  p.validate();
  opt.validate();
  check_scale(scale);
  check_log_weights("log_b", log_b, p.y.n);
}

void check_pair(PointsView x, PointsView y) { ScoreProblem{x, y, {}}.validate(); }

// c_j = a * h_j + log_b_j (either may be absent); empty when both are.
std::vector<float> column_offsets(std::span<const float> h, float a, std::span<const float> log_b, int64_t m) {
  if (h.empty() && log_b.empty()) return {};
  std::vector<float> c(static_cast<size_t>(m), 0.0f);
  for (int64_t j = 0; j < m; ++j) {
    const float hj = h.empty() ? 0.0f : h[j], bj = log_b.empty() ? 0.0f : log_b[j];
    c[j] = (std::isinf(hj) || std::isinf(bj)) ? kNegInfF : a * hj + bj;
  }
  return c;
}


// Updates (best, c_best) with the columns c of one tile row whose logit s[c] + gumbel_at(seed, gi, c0 + c)
// beats best (ties: lower c). Exact: every column that can win is evaluated with gumbel_at itself.
// Columns are skipped when their logit is more than kGumbelBound below best (G is bounded), or, on
// AVX2, by a conservative test on the Philox word: G > best - l  <=>  u > exp(-exp(l - best)), checked
// with a margin far above the float rounding, so only columns that may win reach gumbel_at.
void gumbel_scan(const float* s, int64_t cols, uint64_t seed, uint64_t gi, uint64_t c0, double& best,
                 int64_t& c_best) {
  auto consider = [&](int64_t c) {
    if (c == c_best || s[c] == kNegInfF || static_cast<double>(s[c]) < best - kGumbelBound) return;
    const double v = static_cast<double>(s[c]) + gumbel_at(seed, gi, c0 + static_cast<uint64_t>(c));
    if (v > best || (v == best && c < c_best)) best = v, c_best = c;
  };
#if defined(__AVX2__) && defined(__FMA__)
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t c = 0; c < cols; c += 8) {
    const __m256 l = kernels::load_padded(s, c, cols, kNegInfF);
    const __m256 reach = _mm256_cmp_ps(l, _mm256_set1_ps(static_cast<float>(best - kGumbelBound)), _CMP_GE_OQ);
    if (_mm256_movemask_ps(reach) == 0) continue;
    // u_hi >= u: the top Philox word r0 gives u within 2^-21 (plus float rounding of r0).
    const __m256i r0 = kernels::philox8_word0(seed, gi, c0 + static_cast<uint64_t>(c));
    const __m256 u_hi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(r0, 1)), _mm256_set1_ps(0x1.0p-31f),
                                        _mm256_set1_ps(2e-6f));
    // th_lo <= exp(-exp(l - best)): exponent enlarged by the float rounding of l - best, exps by 1e-5.
    const float slack = static_cast<float>(1e-5 + 4e-7 * (std::abs(best) + 40.0));
    const __m256 arg = _mm256_add_ps(_mm256_sub_ps(l, _mm256_set1_ps(static_cast<float>(best))), _mm256_set1_ps(slack));
    const __m256 a_hi = _mm256_mul_ps(kernels::exp8(_mm256_min_ps(arg, _mm256_set1_ps(80.0f))), _mm256_set1_ps(1.0f + 1e-5f));
    const __m256 th_lo = _mm256_mul_ps(kernels::exp8(_mm256_sub_ps(_mm256_setzero_ps(), a_hi)), _mm256_set1_ps(1.0f - 1e-5f));
    const __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(8, cols - c))), lane));
    const __m256 may_win = _mm256_and_ps(_mm256_and_ps(reach, valid), _mm256_cmp_ps(u_hi, th_lo, _CMP_GE_OQ));
    for (int mask = _mm256_movemask_ps(may_win); mask; mask &= mask - 1) consider(c + std::countr_zero(static_cast<unsigned>(mask)));
  }
#else
  for (int64_t c = 0; c < cols; ++c) consider(c);
#endif
}


// The common start of a reduction: the tiling and the block computer of one call.
struct Engine {
  Tiling t;
  BlockComputer bc;
  Engine(PointsView x, PointsView y, BlockKind kind, const ScoreOptions& opt)
      : t(x.n, y.n, opt, x.d <= opt.direct_max_dim), bc(x, y, kind, opt) {}
  template <class R>
  void run(R& r, const Context& ctx) const { kernels::reduce_rows(bc, t, ctx, r); }
};

void lse_reduce(const Engine& e, float a, const std::vector<float>& off, std::span<double> lse, const Context& ctx) {
  kernels::LseReducer r{a, off.empty() ? nullptr : off.data(), lse};
  e.run(r, ctx);
}

}  // namespace

void row_argmax(const ScoreProblem& p, std::span<int64_t> index, std::span<float> value, const Context& ctx,
                const ScoreOptions& opt) {
  p.validate();
  opt.validate();
  check_len("index", index.size(), p.x.n);
  check_len("value", value.size(), p.x.n);
  require_some_column(p, {});
  if (p.x.n == 0) return;
  switch (const EnginePath path = argmax_path(p.y.n, p.x.d, opt)) {
    case EnginePath::Avx512Bf16:
    case EnginePath::Amx:
      return kernels::bf16_row_argmax(p, path, index, value, ctx);
    case EnginePath::Vnni: {
      const auto lattice = LatticeColumns::build(p.y, ctx);
      require(lattice != nullptr, "engine", "'vnni'", "y on an 8-bit lattice (otgen/kernels/lattice.h) for the int8 screen");
      return row_argmax(p, *lattice, index, value, ctx);
    }
    default:
      break;
  }
  kernels::ArgmaxReducer r{p.h.empty() ? nullptr : p.h.data(), index, value};
  Engine(p.x, p.y, BlockKind::Dot, opt).run(r, ctx);
}

namespace {

void check_columns(const ScoreProblem& p, const Bf16Columns& c) {
  require(p.y.data == c.y().data && p.y.n == c.y().n && p.y.d == c.y().d, "columns",
          "bf16 columns of shape (" + std::to_string(c.y().n) + ", " + std::to_string(c.y().d) + ")",
          "the columns built from this problem's y");
}

}  // namespace

void row_argmax(const ScoreProblem& p, const Bf16Columns& columns, std::span<int64_t> index, std::span<float> value,
                const Context& ctx) {
  p.validate();
  check_columns(p, columns);
  check_len("index", index.size(), p.x.n);
  check_len("value", value.size(), p.x.n);
  require_some_column(p, {});
  if (p.x.n == 0) return;
  kernels::bf16_screened_topk(p, columns, 1, true, index, value, ctx);
}

void row_topk(const ScoreProblem& p, const Bf16Columns& columns, int64_t k, std::span<int64_t> index,
              std::span<float> value, const Context& ctx) {
  p.validate();
  check_columns(p, columns);
  require(k >= 1 && k <= p.y.n, "k", k, "1 <= k <= m = " + std::to_string(p.y.n));
  check_len("index", index.size(), p.x.n * k);
  check_len("value", value.size(), p.x.n * k);
  if (p.x.n == 0) return;
  kernels::bf16_screened_topk(p, columns, k, false, index, value, ctx);
}

void row_topk(const ScoreProblem& p, int64_t k, std::span<int64_t> index, std::span<float> value, const Context& ctx,
              const ScoreOptions& opt) {
  p.validate();
  opt.validate();
  require(k >= 1 && k <= p.y.n, "k", k, "1 <= k <= m = " + std::to_string(p.y.n));
  check_len("index", index.size(), p.x.n * k);
  check_len("value", value.size(), p.x.n * k);
  if (p.x.n == 0) return;
  if (const EnginePath path = argmax_path(p.y.n, p.x.d, opt); bf16_screen_path(path))
    return kernels::bf16_row_topk(p, path, k, index, value, ctx);
  kernels::TopkReducer r{p.h.empty() ? nullptr : p.h.data(), k, index, value};
  Engine(p.x, p.y, BlockKind::Dot, opt).run(r, ctx);
}

void row_logsumexp(const ScoreProblem& p, float scale, std::span<const float> log_b, std::span<float> lse,
                   const Context& ctx, const ScoreOptions& opt) {
  validate_scaled(p, opt, scale, log_b);
  check_len("lse", lse.size(), p.x.n);
  if (p.x.n == 0) return;
  std::vector<double> out(static_cast<size_t>(p.x.n));
  lse_reduce(Engine(p.x, p.y, BlockKind::Dot, opt), scale, column_offsets(p.h, scale, log_b, p.y.n), out, ctx);
  for (int64_t i = 0; i < p.x.n; ++i) lse[i] = static_cast<float>(out[i]);
}

namespace {

// softmax_column_sums in two passes: the row LSE, then every tile recomputed and exp(logit - lse_i)
// summed per column.
void softmax_two_pass(const Engine& e, float scale, const std::vector<float>& off, std::span<double> col_sums,
                      std::span<float> lse, const Context& ctx) {
  const Tiling& t = e.t;
  const BlockComputer& bc = e.bc;
  const int64_t n = t.n, m = t.m;
  const float* offp = off.empty() ? nullptr : off.data();
  std::vector<double> l(static_cast<size_t>(n));
  lse_reduce(e, scale, off, l, ctx);
  for (int64_t i = 0; i < n; ++i) lse[i] = static_cast<float>(l[i]);
  kernels::BlasSingleThread blas_guard;
  const int threads = kernels::team_size(ctx, t.nct, static_cast<double>(n) * m * (bc.d() + 16));
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> block(static_cast<size_t>(std::min(t.tr, n) * std::min(t.tc, m)));
    std::vector<float> scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t ct = 0; ct < t.nct; ++ct) {  // one thread owns a column tile: deterministic sums
      const int64_t c0 = ct * t.tc, cols = t.cols(ct);
      double* cs = col_sums.data() + c0;
      for (int64_t r0 = 0; r0 < n; r0 += t.tr) {
        const int64_t rows = std::min(t.tr, n - r0);
        bc.compute(r0, rows, c0, cols, block.data(), cols, scratch);
        for (int64_t r = 0; r < rows; ++r) {
          if (l[r0 + r] == kNegInfD) continue;
          float* s = block.data() + r * cols;
          kernels::affine_max(s, cols, scale, offp ? offp + c0 : nullptr);  // the logits of pass 1
          exp_accumulate(s, cols, 1.0f, -static_cast<float>(l[r0 + r]), 1.0, cs);
        }
      }
    }
  }
}

// softmax_column_sums in one pass: a group of G rows keeps its scores for all m columns (as
// exp(logit - tile max)) while their LSE is completed. Balanced groups: as few as the buffer allows, of
// equal size (1024 rows at 60 MiB: 4 x 256).
void softmax_one_pass(const Engine& e, float scale, const std::vector<float>& off, int64_t fit_rows,
                      std::span<double> col_sums, std::span<float> lse, const Context& ctx) {
  const Tiling& t = e.t;
  const BlockComputer& bc = e.bc;
  const int64_t n = t.n, m = t.m;
  const float* offp = off.empty() ? nullptr : off.data();
  const int64_t groups = (n + std::min(n, fit_rows) - 1) / std::min(n, fit_rows);
  const int64_t G = (n + groups - 1) / groups;
  const int64_t tr = std::min(t.tr, G);
  const kernels::HugeBuffer buf(static_cast<size_t>(G * m));
  std::vector<LsePartial> part(static_cast<size_t>(G * t.nct));
  kernels::BlasSingleThread blas_guard;
  for (int64_t g0 = 0; g0 < n; g0 += G) {
    const int64_t rows_g = std::min(G, n - g0);
    const int64_t nrb = (rows_g + tr - 1) / tr;
    const int64_t items = nrb * t.nct;
    const int threads = kernels::team_size(ctx, items, static_cast<double>(rows_g) * m * (bc.d() + 16));
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> scratch;
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < items; ++it) {
        const int64_t rb = it / t.nct, ct = it % t.nct;
        const int64_t r0 = rb * tr, rows = std::min(tr, rows_g - r0);
        const int64_t c0 = ct * t.tc, cols = t.cols(ct);
        float* out = buf.data() + r0 * m + c0;
        bc.compute(g0 + r0, rows, c0, cols, out, m, scratch);
        for (int64_t r = 0; r < rows; ++r) {
          float* s = out + r * m;
          const float mx = kernels::affine_max(s, cols, scale, offp ? offp + c0 : nullptr);
          part[static_cast<size_t>((r0 + r) * t.nct + ct)] = {mx, mx == kNegInfF ? 0.0 : exp_sum(s, cols, 1.0f, -mx, true)};
        }
      }
      // Row LSE: every thread merges the (cheap) partials itself, which saves a barrier.
      std::vector<double> lrow(static_cast<size_t>(rows_g));
      for (int64_t r = 0; r < rows_g; ++r)
        lrow[r] = lse_value(merge_lse(std::span<const LsePartial>(part.data() + r * t.nct, static_cast<size_t>(t.nct))));
      if (omp_get_thread_num() == 0)
        for (int64_t r = 0; r < rows_g; ++r) lse[g0 + r] = static_cast<float>(lrow[r]);
      // Column sums: each thread owns a contiguous range of column tiles (deterministic: every column
      // is summed over r in order) and sweeps the group row by row, so it reads long contiguous runs.
      const int64_t nth = omp_get_num_threads(), tid = omp_get_thread_num();
      const int64_t ct_lo = t.nct * tid / nth, ct_hi = t.nct * (tid + 1) / nth;
      for (int64_t r = 0; r < rows_g; ++r) {
        if (lrow[r] == kNegInfD) continue;
        for (int64_t ct = ct_lo; ct < ct_hi; ++ct) {
          const float mt = part[static_cast<size_t>(r * t.nct + ct)].max;
          if (mt == kNegInfF) continue;
          const double w = std::exp(static_cast<double>(mt) - lrow[r]);  // exp(tile max - lse_i)
          const int64_t c0 = ct * t.tc, cols = t.cols(ct);
          double* cs = col_sums.data() + c0;
          const float* sr = buf.data() + r * m + c0;
#pragma omp simd
          for (int64_t c = 0; c < cols; ++c) cs[c] += w * sr[c];
        }
      }
    }
  }
}

}  // namespace

void softmax_column_sums(const ScoreProblem& p, float scale, std::span<const float> log_b, std::span<double> col_sums,
                         std::span<float> lse, const Context& ctx, const ScoreOptions& opt) {
  validate_scaled(p, opt, scale, log_b);
  check_len("col_sums", col_sums.size(), p.y.n);
  check_len("lse", lse.size(), p.x.n);
  std::fill(col_sums.begin(), col_sums.end(), 0.0);
  const int64_t n = p.x.n, m = p.y.n;
  if (n == 0) return;
  if (m == 0) {
    std::fill(lse.begin(), lse.end(), kNegInfF);
    return;
  }
  const Engine e(p.x, p.y, BlockKind::Dot, opt);
  const std::vector<float> off = column_offsets(p.h, scale, log_b, m);
  const int64_t fit_rows = opt.buffer_bytes / (m * static_cast<int64_t>(sizeof(float)));
  if (fit_rows < std::min<int64_t>(n, 32))
    softmax_two_pass(e, scale, off, col_sums, lse, ctx);
  else
    softmax_one_pass(e, scale, off, fit_rows, col_sums, lse, ctx);
}

namespace {

// argmax_j (scale * S_ij + off_j + gumbel_at(seed, row_offset + i, column_offset + j)).
struct GumbelReducer {
  using Slot = ArgmaxPartial<double>;
  float scale;
  const float* off;  // null = 0
  uint64_t seed, row_offset, column_offset;
  std::span<int64_t> index;

  int64_t width() const { return 1; }
  void fold(int64_t i, float* s, int64_t c0, int64_t cols, Slot* part) const {
    const float mx = kernels::affine_max(s, cols, scale, off ? off + c0 : nullptr);
    *part = Slot{};
    if (mx == kNegInfF) return;
    const uint64_t gi = row_offset + static_cast<uint64_t>(i), key0 = column_offset + static_cast<uint64_t>(c0);
    int64_t c_best = 0;
    while (s[c_best] != mx) ++c_best;
    double best = static_cast<double>(mx) + gumbel_at(seed, gi, key0 + static_cast<uint64_t>(c_best));
    gumbel_scan(s, cols, seed, gi, key0, best, c_best);
    *part = Slot{best, c0 + c_best};
  }
  void merge(const Slot* parts, int64_t count, Slot* out) const {
    *out = merge_argmax(std::span<const Slot>(parts, static_cast<size_t>(count)));
  }
  void finish(int64_t i, const Slot* m) {
    int64_t arg = m->index;
    if (arg < 0) {  // every unmasked logit overflowed to -inf: the first unmasked column
      arg = 0;
      while (off && off[arg] == kNegInfF) ++arg;
    }
    index[i] = arg;
  }
};

}  // namespace

void row_gumbel_argmax(const ScoreProblem& p, float scale, std::span<const float> log_b, uint64_t seed,
                       std::span<int64_t> index, const Context& ctx, const ScoreOptions& opt, uint64_t row_offset) {
  validate_scaled(p, opt, scale, log_b);
  check_len("index", index.size(), p.x.n);
  require_some_column(p, log_b);
  if (p.x.n == 0) return;
  const std::vector<float> off = column_offsets(p.h, scale, log_b, p.y.n);
  GumbelReducer r{scale, off.empty() ? nullptr : off.data(), seed, row_offset, p.column_offset, index};
  Engine(p.x, p.y, BlockKind::Dot, opt).run(r, ctx);
}

namespace {

template <class T>
void make_global(std::span<ArgmaxPartial<T>> parts, uint64_t column_offset) {
  for (auto& q : parts)
    if (q.index >= 0) q.index += static_cast<int64_t>(column_offset);
}

}  // namespace

void row_argmax_partials(const ScoreProblem& p, std::span<ArgmaxPartial<float>> out, const Context& ctx,
                         const ScoreOptions& opt) {
  p.validate();
  opt.validate();
  check_len("out", out.size(), p.x.n);
  if (p.x.n == 0) return;
  kernels::PartialsOf<kernels::ArgmaxReducer> r{{p.h.empty() ? nullptr : p.h.data(), {}, {}}, out};
  Engine(p.x, p.y, BlockKind::Dot, opt).run(r, ctx);
  make_global(out, p.column_offset);
}

void row_gumbel_partials(const ScoreProblem& p, float scale, std::span<const float> log_b, uint64_t seed,
                         std::span<ArgmaxPartial<double>> out, const Context& ctx, const ScoreOptions& opt,
                         uint64_t row_offset) {
  validate_scaled(p, opt, scale, log_b);
  check_len("out", out.size(), p.x.n);
  if (p.x.n == 0) return;
  const std::vector<float> off = column_offsets(p.h, scale, log_b, p.y.n);
  kernels::PartialsOf<GumbelReducer> r{{scale, off.empty() ? nullptr : off.data(), seed, row_offset, p.column_offset, {}}, out};
  Engine(p.x, p.y, BlockKind::Dot, opt).run(r, ctx);
  make_global(out, p.column_offset);
}

void row_logsumexp_partials(const ScoreProblem& p, float scale, std::span<const float> log_b,
                            std::span<LsePartial> out, const Context& ctx, const ScoreOptions& opt) {
  validate_scaled(p, opt, scale, log_b);
  check_len("out", out.size(), p.x.n);
  if (p.x.n == 0) return;
  const std::vector<float> off = column_offsets(p.h, scale, log_b, p.y.n);
  kernels::PartialsOf<kernels::LseReducer> r{{scale, off.empty() ? nullptr : off.data(), {}}, out};
  Engine(p.x, p.y, BlockKind::Dot, opt).run(r, ctx);
}

void kernel_row_logsumexp(PointsView x, PointsView y, double alpha, std::span<const float> log_w, std::span<float> out,
                          const Context& ctx, const ScoreOptions& opt) {
  check_pair(x, y);
  opt.validate();
  require(alpha > 0 && std::isfinite(alpha), "alpha", alpha, "a positive finite number");
  check_log_weights("log_w", log_w, y.n);
  check_len("out", out.size(), x.n);
  if (x.n == 0) return;
  const std::vector<float> off(log_w.begin(), log_w.end());
  std::vector<double> l(static_cast<size_t>(x.n));
  lse_reduce(Engine(x, y, BlockKind::SqDist, opt), static_cast<float>(-alpha), off, l, ctx);
  for (int64_t i = 0; i < x.n; ++i) out[i] = static_cast<float>(l[i]);
}

void kernel_row_sums(PointsView x, PointsView y, std::span<const double> alphas, std::span<double> out,
                     const Context& ctx, const ScoreOptions& opt) {
  check_pair(x, y);
  opt.validate();
  for (double a : alphas) require(a > 0 && std::isfinite(a), "alphas", a, "positive finite numbers");
  const int64_t A = static_cast<int64_t>(alphas.size());
  check_len("out", out.size(), x.n * A);
  std::fill(out.begin(), out.end(), 0.0);
  if (x.n == 0 || y.n == 0 || A == 0) return;
  std::vector<float> neg_alpha(static_cast<size_t>(A));
  for (int64_t a = 0; a < A; ++a) neg_alpha[a] = static_cast<float>(-alphas[a]);
  auto sums = [&](float* s, int64_t cols, double* dst) {
    for (int64_t a = 0; a < A; ++a) dst[a] = exp_sum(s, cols, neg_alpha[a], 0.0f, false);
  };
  kernels::RowSumReducer<decltype(sums)> r{A, sums, out};
  Engine(x, y, BlockKind::SqDist, opt).run(r, ctx);
}

void distance_row_sums(PointsView x, PointsView y, std::span<double> out, const Context& ctx, const ScoreOptions& opt) {
  check_pair(x, y);
  opt.validate();
  check_len("out", out.size(), x.n);
  std::fill(out.begin(), out.end(), 0.0);
  if (x.n == 0 || y.n == 0) return;
  auto sum_sqrt = [](float* s, int64_t cols, double* dst) {
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < cols; ++c) sum += std::sqrt(static_cast<double>(s[c]));
    *dst = sum;
  };
  kernels::RowSumReducer<decltype(sum_sqrt)> r{1, sum_sqrt, out};
  Engine(x, y, BlockKind::SqDist, opt).run(r, ctx);
}

void score_matrix(const ScoreProblem& p, std::span<float> out, const Context& ctx, const ScoreOptions& opt) {
  p.validate();
  opt.validate();
  check_len("out", out.size(), p.x.n * p.y.n);
  const int64_t n = p.x.n, m = p.y.n;
  if (n == 0 || m == 0) return;
  const Engine e(p.x, p.y, BlockKind::Dot, opt);
  const Tiling& t = e.t;
  const BlockComputer& bc = e.bc;
  const int64_t nrb = (n + t.tr - 1) / t.tr, items = nrb * t.nct;
  const float* h = p.h.empty() ? nullptr : p.h.data();
  kernels::BlasSingleThread blas_guard;
#pragma omp parallel num_threads(kernels::team_size(ctx, items, static_cast<double>(n) * m * (bc.d() + 2)))
  {
    std::vector<float> scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t r0 = it / t.nct * t.tr, rows = std::min(t.tr, n - r0);
      const int64_t c0 = it % t.nct * t.tc, cols = t.cols(it % t.nct);
      float* o = out.data() + r0 * m + c0;
      bc.compute(r0, rows, c0, cols, o, m, scratch);
      if (h)
        for (int64_t r = 0; r < rows; ++r) {
          float* orow = o + r * m;
#pragma omp simd
          for (int64_t c = 0; c < cols; ++c) orow[c] += h[c0 + c];
        }
    }
  }
}

}  // namespace otgen
