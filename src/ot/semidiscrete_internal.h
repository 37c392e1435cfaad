// Internal machinery shared by the semidiscrete fit and the map operations: the target split into
// "groups" of candidate columns (one group for unconditional OT and for the finite-beta augmented
// cost per noise class; one subset of the data per class for per-class potentials), noise drawing,
// and the batched reductions through the score engine.
#pragma once

#include <cstdint>
#include <optional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "otgen/kernels/bf16_columns.h"
#include "otgen/core/communicator.h"
#include "otgen/core/context.h"
#include "otgen/kernels/lattice.h"
#include "otgen/core/points.h"
#include "otgen/kernels/scores.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/core/streams.h"

namespace otgen::sdot_detail {

// The candidate columns for noise of one class (or all noise when unconditional).
struct Group {
  Points y_own;                 // per-class: a contiguous copy of the class's points
  PointsView y;                 // the columns (y_own, or the full data)
  std::vector<int64_t> cols;    // global index of each local column; empty = identity
  std::vector<float> log_b;     // local log b_j (-inf when b_j = 0)
  std::vector<float> y_shift;   // local |y_j|^2 / 2 (half cost) or 0 (dot)
  std::vector<float> penalty;   // local -beta [l_j != k] (finite beta), or empty
  std::shared_ptr<const LatticeColumns> lattice;  // int8 screen of y (8-bit lattice data), or null
  std::shared_ptr<const Bf16Columns> bf16;        // bf16 screen of y (no lattice, path avx512bf16), or null
  // The index in this rank's data (P.b, col_sum) of a local column; add P.offset for the global index.
  int64_t global(int64_t local) const { return cols.empty() ? local : cols[local]; }
  int64_t size() const { return y.n; }
};

// PCA-reduced matching (docs/semidiscrete.md): the noise is drawn in D dimensions and projected on the
// K orthonormal rows of U, so the matching runs in K dimensions between N(0, I_K) and the projected data.
struct Projection {
  int64_t D = 0, K = 0;
  std::vector<float> U;  // (K, D) row-major
  Points apply(PointsView x, const Context& ctx) const;  // x U^T: (n, D) -> (n, K), on the score engine
};

// The projection of a map's basis (K x D values, row-major, for data of dimension D), checked: K in
// [1, D], finite, orthonormal rows within 1e-3 (errors name "pca basis").
std::shared_ptr<const Projection> basis_projection(std::span<const float> basis, int64_t D);

struct Prepared {
  int64_t N = 0, d = 0;           // d: the matching dimension (K under a projection)
  SdotCost cost = SdotCost::SqEuclideanHalf;
  std::vector<double> b;          // full weights (uniform filled in)
  std::vector<int64_t> labels;    // copy, or empty
  int64_t num_classes = 0;        // 0 = unconditional
  bool per_class = false;         // beta = infinity with labels
  std::vector<double> class_w;    // noise class weights w_k (length K), empty when unconditional
  std::vector<Group> groups;      // 1 when unconditional, else K
  // What it was prepared from (SemidiscreteMap::prepared is reused only for the same arrays).
  const float* y_data = nullptr;
  const double* b_data = nullptr;
  const int64_t* labels_data = nullptr;
  double class_penalty = 0;
  const float* basis_data = nullptr;
  // PCA-reduced matching: the noise projection (null = none), and the projected data the groups view
  // when the preparation projected them itself (a map's; the fit keeps its own).
  std::shared_ptr<const Projection> proj;
  std::shared_ptr<const Points> projected;
  int64_t noise_d() const { return proj ? proj->D : d; }
  // Sharded (a Context communicator of more than one rank, docs/dist.md): this rank's data are rows
  // [offset, offset + N) of N_total; b_all is every rank's b, gathered (for the checks' sums, so they
  // are summed in the single-process order). One process: comm null, offset 0, N_total = N, b_all empty.
  const Communicator* comm = nullptr;
  int64_t offset = 0, N_total = 0;
  std::vector<double> b_all;
  bool sharded() const { return comm != nullptr; }
  std::span<const double> all_b() const { return sharded() ? std::span<const double>(b_all) : std::span<const double>(b); }

  // Every group has an int8 screen.
  bool screened() const {
    for (const Group& G : groups)
      if (!G.lattice) return false;
    return !groups.empty();
  }
  // The columns a search of group G scans: all ranks' for a sharded whole set (the engine's size rules).
  int64_t scanned(const Group& G) const { return G.y.data == y_data ? N_total : G.size(); }
  // The path of the eps = 0 searches under `engine`: the int8 screen's kernel ("amx" or "vnni", every
  // group's the same) when every group has one, else the argmax path of the first group's size.
  std::string_view argmax_path_name(const ScoreOptions& engine) const {
    if (screened() && engine.uses_int8_screen()) return engine_path_name(groups[0].lattice->amx() ? EnginePath::Amx : EnginePath::Vnni);
    if (sharded()) return engine_path_name(EnginePath::Fp32);  // the sharded merge: the int8 screen or fp32
    return engine_path_name(argmax_path(groups.empty() ? 0 : scanned(groups[0]), d, engine));
  }

  // Local biases h of group k for the global potential g (masked columns: -inf).
  void group_h(size_t k, std::span<const double> g, std::vector<float>& h) const;
};

// Validates (y, b, labels, beta) and builds the groups. Throws otgen::Error on bad input.
// screen_ctx: also build each group's screen for engine's argmax path: the int8 screen when its points
// are on an 8-bit lattice (and engine.uses_int8_screen(); on AMX tiles where engine.int8_screen_on_amx()),
// else the bf16 columns when the path is avx512bf16 or amx.
// comm of more than one rank: (y, b) are this rank's rows of the whole (sharded; unconditional only,
// no int8 screen); b sums to 1 over all ranks; every rank throws the same CollectiveError on bad input.
Prepared prepare(PointsView y, std::span<const double> b, SdotCost cost, std::span<const int64_t> labels,
                 double class_penalty, const Context* screen_ctx = nullptr, const ScoreOptions& engine = {},
                 const Communicator& comm = single_process());

// Throws, on every rank alike, that `what` is not sharded yet (when P is sharded / comm has > 1 rank).
void require_unsharded(const Prepared& P, const std::string& what);
void require_unsharded(const Communicator& comm, const std::string& what);

// The fit of SemidiscreteOT::fit (options validated) on data y already in the matching space; proj:
// the noise projection of PCA-reduced matching (null = none), recorded in Result::pca_basis.
SemidiscreteOT::Result fit_in(const SemidiscreteOT::Options& o, PointsView y, std::span<const double> b,
                              const Context& ctx, std::span<const int64_t> labels, std::span<const float> g0,
                              std::shared_ptr<const Projection> proj);

// Sharded: the sums of every rank (in place); one process: as they are.
inline void sum_over_ranks(const Prepared& P, std::span<double> v) {
  if (P.sharded()) P.comm->allreduce_sum(v);
}

// What the automatic defaults resolved to, and the starting potential.
struct Plan {
  double lr = 0, lr_final = 0;
  int64_t chi2_every = 0, chi2_repeats = 0;
  std::string init;
  double gap_scale = 0, lr_scale = 0;
  std::vector<double> g;
};

// The fit's start (semidiscrete_start.cpp). choose_init: the starting potential, g0 when given, the
// named candidate, or (auto) the coarse-to-fine start or the candidate whose hard assignments of one
// fresh batch have the smallest chi2. resolve_auto: the step sizes and check cadence left automatic.
void choose_init(const Prepared& P, PointsView y, const SemidiscreteOT::Options& o, std::span<const float> g0,
                 const Context& ctx, Plan& plan);
void resolve_auto(const Prepared& P, const SemidiscreteOT::Options& o, double eps, const Context& ctx, Plan& plan);

// eps_abs of relative epsilon (sdot_reference_cost_std) with the noise of proj (null: in y's dimension).
double reference_cost_std(PointsView y, std::span<const double> b, SdotCost cost, uint64_t seed, const Context& ctx,
                          int64_t noise_draws, int64_t max_points, const Projection* proj);

// Every eps = 0 search goes through here: the int8 screen when the group has one and the engine
// options allow it, else the float32 engine; sharded, the ranks' partials merged (max value, lowest
// global index). index: global data indices (offset + G.global(local)), the same on every rank.
void group_argmax(const Prepared& P, const Group& G, PointsView x, std::span<const float> h,
                  std::span<int64_t> index, std::span<float> value, const Context& ctx, const ScoreOptions& engine);

// Sharded: every rank's values of a per-point array (length N on each rank) in global order, length
// N_total; one process: the values as they are.
std::vector<double> gather_points(const Prepared& P, std::span<const double> local);

// x ~ N(0, I_d): row i drawn from Rng(stream_key(seed, stream, step), i); independent of threads.
Points draw_noise(uint64_t seed, Stream stream, uint64_t step, int64_t n, int64_t d, const Context& ctx);
// The same draw in proj->D dimensions projected to d = proj->K (proj null: in d dimensions).
Points draw_noise(const Projection* proj, uint64_t seed, Stream stream, uint64_t step, int64_t n, int64_t d,
                  const Context& ctx);
// The problem's noise: N(0, I_d) in its matching space (projected N(0, I_D) under PCA matching).
inline Points draw_noise(const Prepared& P, uint64_t seed, Stream stream, uint64_t step, int64_t n, const Context& ctx) {
  return draw_noise(P.proj.get(), seed, stream, step, n, P.d, ctx);
}
// Noise classes k ~ w (empty when unconditional).
std::vector<int64_t> draw_classes(const Prepared& P, uint64_t seed, Stream stream, uint64_t step, int64_t n);

// The rows of x split by class: rows[k] are the indices of class-k rows (one group of all rows when
// unconditional), and xs[k] the gathered rows (empty Points when no gather is needed: use x).
struct Split {
  std::vector<std::vector<int64_t>> rows;
  std::vector<Points> xs;
  bool identity = true;  // one group, rows in order
  PointsView view(size_t k, PointsView x) const { return identity ? x : xs[k].view(); }
  int64_t row(size_t k, int64_t i) const { return identity ? i : rows[k][i]; }
};
Split split_rows(const Prepared& P, PointsView x, std::span<const int64_t> x_labels);

// One batch: column sums of s(x_i) (global, length N, added into col_sum) and, when col_sum_sq is not
// empty, of s(x_i)^2; returns sum_i f_g(x_i) (the c-transform, for the loss). eps = 0 uses the argmax.
// exact_rows = true computes soft rows by materialising score chunks (needed for col_sum_sq).
double accumulate_batch(const Prepared& P, PointsView x, std::span<const int64_t> x_labels,
                        std::span<const double> g, double eps, std::span<double> col_sum,
                        std::span<double> col_sum_sq, const Context& ctx, const ScoreOptions& engine);

// Pooled marginal statistics over `repeats` batches of `batch` fresh draws (seeded). repeat_chi2, when
// given, receives the one-batch chi2 estimate of each repeat (their spread gives an sd at eps > 0).
SdotMarginalStats marginal_stats(const Prepared& P, std::span<const double> g, double eps, int64_t batch,
                                 int64_t repeats, uint64_t seed, const Context& ctx, const ScoreOptions& engine,
                                 std::vector<double>* repeat_chi2 = nullptr);

// The gap between the best and the second-best hard score (eps = 0) of each row of x among its
// group's support, for the potential g; rows whose group has fewer than 2 support points are skipped.
std::vector<double> score_gaps(const Prepared& P, PointsView x, std::span<const int64_t> x_labels,
                               std::span<const double> g, const Context& ctx, const ScoreOptions& engine);

// Expected-size multinomial noise floor of TV at sample size M (exact draw, seeded).
double tv_floor(std::span<const double> b, int64_t M, uint64_t seed);

}  // namespace otgen::sdot_detail
