// Exact optimal transport between two point batches (SPEC.md §2).
//
// Cost: c(x, y) = |x - y|^2 / 2 (half squared Euclidean; POT's "sqeuclidean" is twice this).
//
// * Uniform n x n batches: the optimal plan is a permutation sigma minimising sum_i c(x_i, y_sigma(i)).
//   `exact_assignment` returns it (never a duplicate). Default solver: Jonker-Volgenant (row and
//   column reduction, reduction transfer, then one shortest augmenting path per free row, with
//   vectorised Dijkstra sweeps), on the dense matrix -<x_i - mean(x), y_j - mean(y)> built by the
//   score engine's GEMM path: it differs from |x_i - y_j|^2 / 2 by a row and a column constant, which
//   do not change a permutation's ranking, and its float32 entries stay small and precise. Duals and
//   path lengths are kept in double. The network simplex
//   (LEMON) solves the same problem as a cross-check.
// * Rectangular batches (n != m, each point of the smaller side matched to a distinct point of the
//   larger side) and non-uniform weights (a sparse transport plan) go through LEMON's network simplex.
//   LEMON needs integer data: costs are scaled to int64 with a relative resolution of about
//   (n + m) * 2^-50 of the largest cost, weights to multiples of 2^-40 (largest-remainder rounding,
//   so the sums stay exact); the reported masses and costs are recomputed in double.
//
// Errors (otgen::Error): empty batches, shape mismatches, NaN/Inf in points or costs, weights that
// are negative or do not sum to 1 (relative tolerance 1e-6), and any network simplex call in a build
// without LEMON (OTGEN_HAVE_LEMON).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "otgen/core/context.h"
#include "otgen/core/points.h"
#include "otgen/kernels/scores.h"
#include "otgen/core/termination.h"

namespace otgen {

enum class AssignmentSolver {
  JonkerVolgenant,  // dense shortest augmenting path; O(n^2) memory, fast in practice
  NetworkSimplex    // LEMON's network simplex on the complete bipartite graph (cross-check)
};

struct AssignmentOptions {
  AssignmentSolver solver = AssignmentSolver::JonkerVolgenant;
  ScoreOptions scores;  // tiling of the cost-matrix GEMM
  void validate() const;
};

struct AssignmentResult {
  std::vector<int64_t> permutation;  // row i is matched to column permutation[i]; a permutation of 0..n-1
  double cost = 0;                   // sum_i C(i, permutation[i]) in double (for points: sum of |x-y|^2/2)
  Termination termination = Termination::Converged;  // exact solvers always converge
  std::string message;
};

// Minimises sum_i cost[i * n + sigma(i)] over permutations. cost: n x n row-major, finite, n >= 1.
AssignmentResult solve_assignment(std::span<const float> cost, int64_t n, const AssignmentOptions& opt = {});
AssignmentResult solve_assignment(std::span<const double> cost, int64_t n, const AssignmentOptions& opt = {});

// The optimal permutation between x (n, d) and y (n, d) for c = |x - y|^2 / 2. n >= 1.
// The bytes exact_assignment needs for two batches of n points: the n x n cost matrix (4 n^2 for
// Jonker-Volgenant; 12 n^2 plus LEMON's arcs, about 52 n^2 in all, for the network simplex).
// exact_assignment refuses (otgen::Error naming "x") sizes above the available memory (otgen/core/memory.h).
double exact_assignment_bytes(int64_t n, AssignmentSolver solver);
AssignmentResult exact_assignment(PointsView x, PointsView y, const Context& ctx,
                                  const AssignmentOptions& opt = {});

// Rectangular assignment (network simplex): min(n, m) pairs (rows[k], cols[k]), each row and each
// column used at most once and every point of the smaller side used exactly once.
struct RectangularAssignment {
  std::vector<int64_t> rows;  // increasing
  std::vector<int64_t> cols;
  double cost = 0;            // sum_k C(rows[k], cols[k])
  Termination termination = Termination::Converged;
  std::string message;
};
RectangularAssignment solve_rectangular_assignment(std::span<const double> cost, int64_t n, int64_t m);
RectangularAssignment exact_rectangular_assignment(PointsView x, PointsView y, const Context& ctx);

// A sparse transport plan: mass[k] moved from row rows[k] to column cols[k]; entries sorted by
// (row, col), zero-mass entries dropped. Row sums are a, column sums b (to the 2^-40 rounding).
struct TransportPlan {
  int64_t n = 0, m = 0;
  std::vector<int64_t> rows, cols;
  std::vector<double> mass;
  double cost = 0;  // sum_k mass[k] * C(rows[k], cols[k])
  Termination termination = Termination::Converged;
  std::string message;
};

// Exact OT between weights a (length n) and b (length m) (non-negative, each summing to 1; empty =
// uniform) on the cost matrix (n x m row-major, finite). Network simplex.
TransportPlan exact_transport(std::span<const double> cost, int64_t n, int64_t m, std::span<const double> a = {},
                              std::span<const double> b = {});
// The same for points with c = |x - y|^2 / 2.
TransportPlan exact_transport(PointsView x, PointsView y, std::span<const double> a, std::span<const double> b,
                              const Context& ctx);

// True when the library was built with LEMON (the network simplex functions work).
bool have_network_simplex();

// sum_i |x_i - y_{sigma(i)}|^2 / 2 in double (sigma of length n, entries in [0, m)).
double matching_cost(PointsView x, PointsView y, std::span<const int64_t> sigma);

}  // namespace otgen
