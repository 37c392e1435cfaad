// Internal: the U-statistics of otgen/metrics/metrics.h on bootstrap resamples. A resample holds copies of one
// input row; the within-sample terms exclude the pairs of copies as they exclude the diagonal (the
// replicate is then the U-statistic over pairs of distinct input rows, centred on the point estimate).
// copies_x = sum_i c_i (c_i - 1): the ordered pairs of distinct resample rows copying the same input
// row (c_i copies of row i); 0 gives energy_distance and the unbiased mmd2 exactly.
#pragma once

#include <span>
#include <vector>

#include "otgen/core/context.h"
#include "otgen/core/points.h"

namespace otgen::detail {

double energy_distance_excluding(PointsView x, PointsView y, double copies_x, double copies_y, const Context& ctx);

// Unbiased MMD^2 per bandwidth (alphas validated by the caller).
std::vector<double> mmd2_excluding(PointsView x, PointsView y, std::span<const double> alphas, double copies_x,
                                   double copies_y, const Context& ctx);

}  // namespace otgen::detail
