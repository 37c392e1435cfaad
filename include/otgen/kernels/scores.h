// The score engine: fused reductions over S_ij = <x_i, y_j> + h_j without storing the n x m matrix.
//
// Every quadratic-cost hot path of otgen is one of these reductions (SPEC.md §1, DESIGN.md): the
// semidiscrete gradient and assignment, Sinkhorn's row/column log-sum-exp, KDE and SMC-WFR weights,
// and the sample-quality metrics. The engine walks tiles of x (rows) and y (columns), computes each
// tile with one SGEMM, adds the bias and folds the tile into per-row / per-column accumulators, so
// memory is O(n + m + tiles).
//
// Shared conventions:
//   x: (n, d), y: (m, d) row-major float32, same d (d >= 1); n == 0 or m == 0 is allowed.
//   h: length m, or empty for h = 0. h_j = -infinity excludes column j from every reduction
//      (a masked target point); NaN and +infinity are rejected.
//   log_b: length m, or empty for 0. log_b_j = -infinity masks column j too.
//   Results are written into caller-provided spans of the documented length (checked).
//   Threads: ctx.threads (0 = all cores). Random draws depend on (seed, i, j) only, so results do not
//   depend on the tiling or the thread count; argmax/top-k ties go to the lowest column index.
#pragma once

#include <cstdint>
#include <span>

#include "otgen/core/context.h"
#include "otgen/core/cpu_features.h"
#include "otgen/core/points.h"
#include "otgen/kernels/score_partials.h"

namespace otgen {

struct ScoreOptions {
  // Rows of x / rows of y per tile (> 0); tests force tiny tiles to hit ragged edges. Large row tiles
  // matter: every row tile streams (and OpenBLAS packs) all of y once. The direct path (below) caps
  // them at 128 x 1024 so that small particle systems still split into several blocks.
  int64_t tile_rows = 1024;
  int64_t tile_cols = 1024;
  // d <= direct_max_dim: blocks are computed by a direct loop (exact differences for distances)
  // instead of SGEMM; faster for tiny d (particles in 1-D/2-D). 0 forces SGEMM; >= 0.
  int64_t direct_max_dim = 8;
  // softmax_column_sums keeps the scores of a group of rows for all m columns (one pass) when at
  // least min(n, 32) rows fit in this many bytes; otherwise it makes two passes. >= 0.
  int64_t buffer_bytes = int64_t{60} << 20;
  // Callers that can screen argmax searches in int8 (data on an 8-bit lattice, AVX-512 VNNI; see
  // otgen/kernels/lattice.h) do so when true: the semidiscrete fit at eps = 0, assign and check. false forces
  // the float32 path everywhere.
  bool int8_screen = true;
  // The argmax / top-k path (otgen/core/cpu_features.h): auto picks per call (argmax_path below; callers
  // holding an int8 screen use it when int8_screen); fp32, vnni and avx512bf16 force one. A forced
  // path the CPU lacks fails validate() naming `engine`. The other reductions always run in float32.
  EnginePath path = EnginePath::Auto;
  // Whether a caller holding an int8 screen may use it: int8_screen and path auto, vnni or amx.
  bool uses_int8_screen() const {
    return int8_screen && (path == EnginePath::Auto || path == EnginePath::Vnni || path == EnginePath::Amx);
  }
  // Whether that int8 screen runs on AMX-INT8 tiles (LatticeColumns::build's amx): path amx, or auto on a
  // CPU that can run amx; vnni forces the AVX-512 VNNI kernel.
  bool int8_screen_on_amx() const;
  // Whether a caller builds the int8 screen for an m x d set of columns (lattice data permitting):
  // uses_int8_screen(), and on the auto path only where the screen pays for its fixed costs
  // (docs/scores.md, "When the screen is used"): m * d >= kInt8MinWork, or any size while OpenBLAS
  // runs non-FMA kernels (blas_has_fma_kernels() false: its float32 search is slow); vnni: any size.
  bool builds_int8_screen(int64_t m, int64_t d) const;
  void validate() const;     // throws otgen::Error naming the field
};

// The problem: S_ij = <x_i, y_j> + h_j.
struct ScoreProblem {
  PointsView x;
  PointsView y;
  std::span<const float> h;  // empty = 0
  // Global index of y's first point when y is one shard of a larger set: random keys (Gumbel draws)
  // use the global column index column_offset + j, so a sharded computation draws what the whole would.
  uint64_t column_offset = 0;
  void validate() const;      // shapes, d match, h length and values
};

// index[i] = argmax_j S_ij (lowest j on ties), value[i] = max_j S_ij. Length n each.
// Throws otgen::Error if m == 0 or every column is masked while n > 0.
// The path is argmax_path(m, d, opt). fp32: S_ij in float32 (SGEMM or the direct loop), value = that
// float. avx512bf16, amx (the bf16 screen on either kernel) and vnni (the int8 screen, built per call;
// y must be on an 8-bit lattice): exact screens whose result is the argmax of S_ij evaluated in double,
// value = that maximum rounded to float; they give identical results, and agree with fp32 except on near-ties within float32's
// rounding of S (where fp32 itself is not exact: SGEMM's value of S_ij depends on the block shape).
void row_argmax(const ScoreProblem& p, std::span<int64_t> index, std::span<float> value,
                const Context& ctx, const ScoreOptions& opt = {});

// The path row_argmax (and row_topk) takes for m columns of dimension d: opt.path if forced, else (auto)
// for d >= kBf16MinDim: amx when the CPU can run it and m d > kAmxMinWork, else avx512bf16 when the CPU
// has it and OpenBLAS runs non-FMA kernels (blas_has_fma_kernels(), otgen/core/blas_threads.h:
// vdpbf16ps peaks at half the AVX-512 FMA rate on the CPUs measured), else fp32. Deterministic for a
// machine and environment. Never Auto.
inline constexpr int64_t kBf16MinDim = 32;
// The auto path's m * d above which the bf16 screen on AMX tiles beats float32 at its best kernels
// (measured: docs/scores.md; the 8x8 digits, 1797 x 64, stay in float32).
inline constexpr int64_t kAmxMinWork = int64_t{1} << 18;
// The auto path's smallest m * d for the int8 screen: below it the float32 search is faster (measured:
// docs/scores.md). The 8x8 digits (1797 x 64 = 115008) stay below it.
inline constexpr int64_t kInt8MinWork = int64_t{1} << 17;
EnginePath argmax_path(int64_t m, int64_t d, const ScoreOptions& opt = {});
// Whether path p is the bf16 screen (avx512bf16 or amx: the same method and results, two kernels).
inline bool bf16_screen_path(EnginePath p) { return p == EnginePath::Avx512Bf16 || p == EnginePath::Amx; }

// The k largest S_ij of each row, in decreasing order (ties: lowest j first); 1 <= k <= m. Path as
// row_argmax: avx512bf16 and amx give the top k of S_ij evaluated in double (values rounded to float); vnni
// has no top-k screen and runs fp32.
// index and value have length n * k (row i at [i*k, i*k + k)).
void row_topk(const ScoreProblem& p, int64_t k, std::span<int64_t> index, std::span<float> value,
              const Context& ctx, const ScoreOptions& opt = {});

// lse[i] = log sum_j exp(scale * S_ij + log_b_j). Length n. -infinity for a row with every column
// masked. scale > 0 and finite.
void row_logsumexp(const ScoreProblem& p, float scale, std::span<const float> log_b,
                   std::span<float> lse, const Context& ctx, const ScoreOptions& opt = {});

// The semidiscrete gradient reduction: with P_ij = exp(scale * S_ij + log_b_j - lse_i) (each row a
// softmax over j), col_sums[j] = sum_i P_ij (length m, double, overwritten) and lse[i] as in
// row_logsumexp (length n).
// Passes: ONE pass over the data when min(n, 32) rows x m floats fit in opt.buffer_bytes (60 MiB by
// default: m <= 491520): the scores of a group of rows are kept (as exp(logit - tile max)) while their
// LSE is completed, then summed down the columns. Otherwise TWO passes (LSE, then recomputed tiles).
// Every row group re-streams y, so groups are as large as the buffer allows (1024 x 60000: 4 groups
// of 256 rows, 58.6 MiB). Peak memory beyond inputs and outputs: at most about opt.buffer_bytes +
// 4 m + 12 n m / tile_cols bytes + 2 MiB.
void softmax_column_sums(const ScoreProblem& p, float scale, std::span<const float> log_b,
                         std::span<double> col_sums, std::span<float> lse, const Context& ctx,
                         const ScoreOptions& opt = {});

// Categorical sampling by Gumbel-max: index[i] = argmax_j (scale * S_ij + log_b_j + G_ij), where
// G_ij = gumbel_at(seed, row_offset + i, p.column_offset + j) (otgen/core/rng.h). Length n. Same errors as row_argmax.
// row_offset lets a caller draw one large batch in pieces with the same result.
// Exact, but cheap: gumbel_at is bounded (G <= 53 ln 2 ~ 36.74 for every u < 1), so columns whose logit
// is more than that below the best value so far are skipped; the rest get a vectorised Philox word and
// a conservative test u > exp(-exp(logit - best)), and only columns that may win are evaluated with
// gumbel_at itself. Peaked rows cost ~the SGEMM; flat rows one Philox block per entry (~1.4x).
// The logit is computed in float (scale * S_ij + (scale * h_j + log_b_j)), the comparison in double.
void row_gumbel_argmax(const ScoreProblem& p, float scale, std::span<const float> log_b,
                       uint64_t seed, std::span<int64_t> index, const Context& ctx,
                       const ScoreOptions& opt = {}, uint64_t row_offset = 0);

// Partial results for sharded data (otgen/kernels/score_partials.h): the same reductions, stopped before
// each row's finish, with indices made global (p.column_offset + j). Merging the partials of the
// shards of y, in column order, with merge_argmax / merge_lse gives the result for the whole y: bit
// for bit for the argmax and the Gumbel-max when every shard starts at a multiple of
// opt.tile_cols (the blocks are then the same), and to rounding for the LSE (one more rescaling).
// Unlike the full calls, a shard may be entirely masked (index -1, max -inf). Length n each.
void row_argmax_partials(const ScoreProblem& p, std::span<ArgmaxPartial<float>> out, const Context& ctx,
                         const ScoreOptions& opt = {});
void row_gumbel_partials(const ScoreProblem& p, float scale, std::span<const float> log_b, uint64_t seed,
                         std::span<ArgmaxPartial<double>> out, const Context& ctx, const ScoreOptions& opt = {},
                         uint64_t row_offset = 0);
void row_logsumexp_partials(const ScoreProblem& p, float scale, std::span<const float> log_b,
                            std::span<LsePartial> out, const Context& ctx, const ScoreOptions& opt = {});

// Squared-distance kernels, with |x_i - y_j|^2 = |x_i|^2 + |y_j|^2 - 2 <x_i, y_j> clamped at 0.
// out[i] = log sum_j exp(log_w_j - alpha * |x_i - y_j|^2); log_w empty = 0; alpha > 0. Length n.
// (Gaussian KDE in log space: alpha = 1 / (2 h^2), log_w = log weights; add the normaliser yourself.)
void kernel_row_logsumexp(PointsView x, PointsView y, double alpha, std::span<const float> log_w,
                          std::span<float> out, const Context& ctx, const ScoreOptions& opt = {});

// out[i * A + a] = sum_j exp(-alphas[a] * |x_i - y_j|^2) for A = alphas.size() bandwidths (RBF sums
// for MMD), accumulated in double. Length n * A.
void kernel_row_sums(PointsView x, PointsView y, std::span<const double> alphas, std::span<double> out,
                     const Context& ctx, const ScoreOptions& opt = {});

// out[i] = sum_j |x_i - y_j| (Euclidean distance; energy distance), in double. Length n.
void distance_row_sums(PointsView x, PointsView y, std::span<double> out, const Context& ctx,
                       const ScoreOptions& opt = {});

// Materialises S (n x m, row-major) into out (length n * m): for small problems (exact assignment
// cost matrices, tests). Uses the same GEMM path.
void score_matrix(const ScoreProblem& p, std::span<float> out, const Context& ctx,
                  const ScoreOptions& opt = {});

}  // namespace otgen
