// Internal: dense cost matrices for the batch OT solvers, built by the score engine's GEMM path.
#pragma once

#include <vector>

#include "otgen/context.h"
#include "otgen/points.h"
#include "otgen/scores.h"

namespace otgen::detail {

// -<x_i, y_j>, n x m row-major float: |x_i - y_j|^2 / 2 minus the row constant |x_i|^2 / 2 and the
// column constant |y_j|^2 / 2 (neither changes an optimal permutation or a Sinkhorn plan).
std::vector<float> neg_inner_products(PointsView x, PointsView y, const Context& ctx, const ScoreOptions& opt);

// x minus its mean (mean accumulated in double).
Points centred(PointsView x);

// |x_i - y_j|^2 / 2 = |x_i|^2/2 + |y_j|^2/2 - <x_i, y_j> in double (inner products from the engine),
// clamped at 0.
std::vector<double> half_sqeuclidean_matrix(PointsView x, PointsView y, const Context& ctx, const ScoreOptions& opt);

// Mean and standard deviation of the half squared cost matrix, accumulated in double over row blocks
// (never stores the matrix).
struct CostMoments {
  double mean = 0, stddev = 0;
};
CostMoments half_sqeuclidean_moments(PointsView x, PointsView y, const Context& ctx, const ScoreOptions& opt);

}  // namespace otgen::detail
