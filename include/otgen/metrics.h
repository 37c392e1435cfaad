// Sample-quality metrics between two point clouds x (n, d) and y (m, d) (SPEC.md §3): for data with no
// pretrained Inception network, and for the WFR benchmarks. The pairwise sums run on the score engine.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "otgen/context.h"
#include "otgen/points.h"

namespace otgen {

// Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (U-statistics for the within-sample terms, so an
// unbiased estimate; can be slightly negative). n, m >= 2.
double energy_distance(PointsView x, PointsView y, const Context& ctx = {});

// Squared MMD with the Gaussian kernel k(a, b) = sum_k exp(-alphas[k] |a - b|^2) (a sum of bandwidths).
// biased = true: the V-statistic (diagonals kept), as Crucinio-Pathiraja report it; false: the unbiased
// U-statistic. n, m >= 2 (>= 1 when biased).
double mmd2(PointsView x, PointsView y, std::span<const double> alphas, bool biased, const Context& ctx = {});

// W_p^p between two 1-D empirical measures with uniform weights (any sizes), exact: the integral of
// |F^-1(u) - G^-1(u)|^p over u. The inputs need not be sorted.
double wasserstein_1d(std::vector<double> u, std::vector<double> v, double p = 1.0);

// Sliced W2: sqrt of the mean over `projections` random unit directions (seeded) of W2^2 between the
// projected samples.
double sliced_w2(PointsView x, PointsView y, int64_t projections = 128, uint64_t seed = 0);

// Mean over coordinates of the 1-D W1 between the marginals ("mean marginal W1").
double mean_marginal_w1(PointsView x, PointsView y);

// Frechet distance between Gaussians fitted to x and y: |mu_x - mu_y|^2 + tr(Sx + Sy - 2 (Sx^1/2 Sy
// Sx^1/2)^1/2), covariances with 1/(n-1); in the given feature space (FID without Inception). n, m >= 2.
double frechet_distance(PointsView x, PointsView y);

}  // namespace otgen
