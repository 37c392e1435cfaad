// Internal: dense cost matrices for the batch OT solvers, built by the score engine's GEMM path.
#pragma once

#include <span>
#include <vector>

#include "otgen/core/context.h"
#include "otgen/core/points.h"
#include "otgen/kernels/scores.h"

namespace otgen::detail {

// -<x_i, y_j>, n x m row-major float: |x_i - y_j|^2 / 2 minus the row constant |x_i|^2 / 2 and the
// column constant |y_j|^2 / 2 (neither changes an optimal permutation or a Sinkhorn plan).
std::vector<float> neg_inner_products(PointsView x, PointsView y, const Context& ctx, const ScoreOptions& opt);

// x minus its mean (mean accumulated in double).
Points centred(PointsView x);

// |x_i - y_j|^2 / 2 = |x_i|^2/2 + |y_j|^2/2 - <x_i, y_j> in double (inner products from the engine),
// clamped at 0.
std::vector<double> half_sqeuclidean_matrix(PointsView x, PointsView y, const Context& ctx, const ScoreOptions& opt);

// Mean and standard deviation of a cost matrix, in double: the half squared cost |x_i - y_j|^2 / 2 =
// |x_i|^2/2 + |y_j|^2/2 - S_ij (clamped at 0), or with half = false the dot cost -S_ij, S = x y^T.
// The one std(C) of the library (Sinkhorn's relative epsilon and epsilon scaling, the semidiscrete
// fit's relative epsilon). Per-row sums of C and C^2, then their sums over the rows in order: the
// result depends neither on the threads nor on the row blocks. scores: S (n x m, row-major) when the
// caller holds it already; empty: row blocks of S from the engine (the matrix is never stored).
struct CostMoments {
  double mean = 0, stddev = 0;
};
CostMoments cost_moments(PointsView x, PointsView y, const Context& ctx, const ScoreOptions& opt, bool half = true,
                         std::span<const float> scores = {});

}  // namespace otgen::detail
