// Entropic optimal transport between two point batches by log-domain Sinkhorn (SPEC.md §2).
//
// Problem: min_P <P, C> + eps KL(P | a b^T) over P >= 0 with P 1 = a, P^T 1 = b, for the cost
// C_ij = |x_i - y_j|^2 / 2. POT and OTT use ||x - y||^2 ("sqeuclidean"): the same plan is theirs at
// reg = 2 eps, and their potentials are twice ours.
// Solution: P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) with
//   f_i = -eps LSE_j(log b_j + (g_j - C_ij) / eps),   g_j = -eps LSE_i(log a_i + (f_i - C_ij) / eps),
// updated alternately (f, then g: one iteration). After a g update the column sums of P are exactly b;
// the stopping rule is the L1 row error sum_i |(P 1)_i - a_i| <= tol. It falls out of the next f update
// for free (sum_i a_i |exp((f_old_i - f_new_i) / eps) - 1|), so it is available every iteration; it is
// tested every `check_every` iterations, and the returned potentials are the pair whose error was
// measured (columns exact, rows within tol).
//
// Internally the solver works with f_i - |x_i|^2/2, g_j - |y_j|^2/2 and the inner products <x_i, y_j>,
// so nothing of size |x|^2 is ever subtracted in float. Two modes:
//   Dense:  stores <x_i, y_j> (n * m float32, from the engine's score_matrix) and sweeps it with a
//           vectorised exp in double (one pass per half-iteration, shifted by the previous potentials;
//           rows/columns whose shifted sum under- or overflows are redone with an exact max shift).
//   Online: never stores the matrix; each half-iteration is one engine row_logsumexp (columns by
//           swapping x and y): O((n + m) d) memory, O(n m d) work per iteration. The engine returns
//           float32 log-sum-exps, which bounds the attainable marginal error at about 1e-6 * |S| / eps.
// Epsilon scaling: eps_k = max(eps, eps0 * decay^k) with eps0 = scaling_start * std(C); every stage
// warm-starts from the previous one's potentials and stops at max(tol, stage_tol) or after
// stage_max_iterations; the last stage (eps_k = eps) runs to tol or max_iterations.
// A NaN/Inf in a potential stops the solver with NumericalFailure and the last finite iterate.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "otgen/core/context.h"
#include "otgen/core/points.h"
#include "otgen/kernels/scores.h"
#include "otgen/core/termination.h"

namespace otgen {

enum class SinkhornMode {
  Auto,   // Dense when the n * m float matrix fits in dense_max_bytes, else Online
  Dense,
  Online
};

struct SinkhornOptions {
  double epsilon = 0.05;              // > 0; absolute, or times std(C) when relative_epsilon
  bool relative_epsilon = false;      // eps_abs = epsilon * std(C) over this batch pair
  double tol = 1e-4;                  // stop when the L1 row-marginal error <= tol (> 0)
  int64_t max_iterations = 10000;     // cap on iterations over all stages (> 0)
  int64_t check_every = 1;            // test the stopping rule every k iterations (> 0)
  bool eps_scaling = true;            // run the epsilon-scaling stages first
  double scaling_start = 1.0;         // eps0 = scaling_start * std(C) (> 0)
  double scaling_decay = 0.5;         // eps_{k+1} = max(eps, decay * eps_k), in (0, 1)
  double stage_tol = 1e-2;            // intermediate stages stop at max(tol, stage_tol) (> 0)
  int64_t stage_max_iterations = 50;  // iteration cap of each intermediate stage (> 0)
  SinkhornMode mode = SinkhornMode::Auto;
  int64_t dense_max_bytes = int64_t{1} << 30;  // Auto: Dense when 4 n m <= this
  ScoreOptions scores;                // engine tiling
  void validate() const;
};

struct SinkhornResult {
  std::vector<double> f, g;     // potentials (our cost convention); g centred: mean 0 over b_j > 0
  double epsilon = 0;           // the absolute epsilon used
  std::optional<double> cost_std;  // std(C), when it was needed (relative epsilon or scaling)
  int64_t iterations = 0;       // full (f, g) iterations over all stages
  int64_t stages = 0;           // epsilon stages run (1 without scaling)
  double marginal_error = 0;    // L1 row-marginal error of (f, g); columns are exact
  double transport_cost = 0;    // <P, C>
  double dual_objective = 0;    // <a, f> + <b, g>
  bool dense = true;            // which mode ran
  Termination termination = Termination::Converged;
  std::string message;
};

// Sinkhorn between x (n, d) with weights a and y (m, d) with weights b (empty = uniform; else
// non-negative, finite, summing to 1 within 1e-6; zero weights are masked). n, m >= 1.
// warm_start (optional): potentials f (length n) and g (length m) from an earlier solve to start from.
SinkhornResult sinkhorn(PointsView x, PointsView y, std::span<const double> a, std::span<const double> b,
                        const Context& ctx, const SinkhornOptions& opt = {},
                        const SinkhornResult* warm_start = nullptr);

// Standard deviation of C_ij = |x_i - y_j|^2 / 2 over all pairs (double accumulation, no storage).
double cost_stddev(PointsView x, PointsView y, const Context& ctx);

// Pairs drawn from a Sinkhorn plan: for each row i one partner j ~ P_ij / (P 1)_i, i.e. the row of the
// plan renormalised (drawn by Gumbel-max in the engine, reproducible from the seed, no matrix stored).
// Rows are independent, so a column may be drawn by several rows or by none. With
// round_to_permutation (n == m only), collisions are resolved: each drawn column keeps the row with
// the largest perturbed score, and the rows left over are matched to the unused columns by an exact
// assignment maximising sum (g_j - C_ij) — the most probable completion under the plan.
std::vector<int64_t> sinkhorn_pairs(PointsView x, PointsView y, std::span<const double> b, const SinkhornResult& plan,
                                    uint64_t seed, bool round_to_permutation, const Context& ctx);

}  // namespace otgen
