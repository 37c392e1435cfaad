// Sample-quality metrics between two point clouds x (n, d) and y (m, d) (SPEC.md §3): for data with no
// pretrained Inception network, and for the WFR benchmarks. The pairwise sums run on the score engine.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "otgen/core/context.h"
#include "otgen/ot/pca.h"
#include "otgen/core/points.h"

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

// The principal directions of a training set for a Frechet distance in a fixed feature space (the role
// Inception plays in FID): PcaBasis and pca_basis (otgen/ot/pca.h, ot layer).

// frechet_distance of the projections (x - mean) V^T and (y - mean) V^T, computed in float64 (no
// float32 rounding of the projected points). x, y: the basis's dimension, n, m >= 2.
double frechet_distance(PointsView x, PointsView y, const PcaBasis& basis);

// The RBF median heuristic: the median of the nonzero pairwise Euclidean distances (float64) within
// the pooled set of at most `per_side` evenly spaced rows of x and of y (rows i * n / per_side, so
// sorted inputs, e.g. by class, are still covered); 1 when every distance is 0.
double median_distance(PointsView x, PointsView y, int64_t per_side = 500);

// Unbiased MMD^2 for each bandwidth separately (mmd2 with one alpha each; they sum to mmd2 with all).
std::vector<double> mmd2_per_bandwidth(PointsView x, PointsView y, std::span<const double> alphas,
                                       const Context& ctx = {});

// Bootstrap resampling. Replicate r of a set of n >= 2 rows draws n row indices with replacement from
// Rng(mix_seed(seed, r, side)) (side 0 = samples, 1 = reference), redrawing the whole replicate while
// it holds fewer than 2 distinct rows (the within-sample terms need a pair; for n >= 2 a redraw is
// needed with probability n^(1 - n)). A pure function of (n, seed, replicate, side).
std::vector<int64_t> bootstrap_indices(int64_t n, uint64_t seed, int64_t replicate, int side);

// The percentile interval of bootstrap values: their (1 - level) / 2 and (1 + level) / 2 quantiles,
// linearly interpolated between order statistics (numpy.percentile's default). values non-empty.
struct Interval {
  double lo = 0;
  double hi = 0;
};
Interval percentile_interval(std::vector<double> values, double level = 0.95);

// Exact W2 on subsamples: k = min(n, m, max_points) points are drawn without replacement from x and
// from y (seeded: x with stream (seed, 0), y with stream (seed, 1); all points, in order, when a side
// has exactly k), matched by the project's exact assignment (exact_assignment, Jonker-Volgenant), and
//   w2 = sqrt( (1/k) sum_i |x_i - y_sigma(i)|^2 ).
// Cost convention: the assignment minimises c = |x - y|^2 / 2 (SPEC.md §0), which has the same
// optimal permutation; its matching cost (recomputed in double) is halved, so w2 = sqrt(2 cost / k).
// The matching is optimal for the float32 cost matrix the assignment builds (relative ties below
// ~1e-7 may resolve either way). O(k^2 d) to build the costs, O(k^2) memory, about O(k^3) worst case
// for the assignment. max_points >= 1; x, y finite, same dimension, n, m >= 1.
struct ExactW2 {
  double w2 = 0;       // the W2 distance between the two subsamples
  int64_t points = 0;  // k, the subsample size on each side
};
ExactW2 exact_w2(PointsView x, PointsView y, int64_t max_points = 2048, uint64_t seed = 0, const Context& ctx = {});

// Improved precision and recall (Kynkaanniemi et al. 2019). The k-NN radius of a point of a set is
// its Euclidean distance to its k-th nearest *other* point of the same set (duplicates count, at
// distance 0). precision = fraction of fake points within the radius (<=) of at least one real point;
// recall = fraction of real points within the radius of at least one fake point. Exact: distances
// are sums of squared float64 differences (no |a|^2 + |b|^2 - 2<a, b> cancellation). Cost
// O((n^2 + m^2 + 2 n m) d) time in the worst case (membership scans stop at the first ball found),
// O(n + m) extra memory; rows are split across ctx threads and the result does not depend on them.
// k >= 1; n_real, n_fake >= k + 1; same dimension; finite.
struct PrecisionRecall {
  double precision = 0;
  double recall = 0;
};
PrecisionRecall precision_recall(PointsView x_real, PointsView x_fake, int64_t k = 3, const Context& ctx = {});

}  // namespace otgen
