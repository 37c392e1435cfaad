// otgen eval's driver, shared by the CLI and Python (otgen.metrics.evaluate): a list of metrics of
// samples against reference data, the MMD bandwidths it used, Frechet distance in a training set's PCA
// basis, and percentile bootstrap intervals. The result is the JSON document `otgen eval` prints.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "otgen/core/context.h"
#include "otgen/core/points.h"

namespace otgen {

struct EvalOptions {
  // Any of: energy, mmd, sw2, w1, fd, fd-pca, w2, prd (computed and reported in this order of keys).
  std::vector<std::string> metrics{"energy", "mmd", "sw2"};
  int64_t projections = 256;  // sw2: random directions (seeded by ctx.seed)
  int64_t max_points = 2048;  // w2: at most this many points per side (seeded subsample)
  int64_t k = 3;              // prd: the k of the k-NN radii
  // mmd: bandwidths sigma = scale * the median distance h (median_distance of the two sets); the
  // kernel is sum over sigma of exp(-|a - b|^2 / (2 sigma^2)).
  std::vector<double> mmd_scales{0.5, 1.0, 2.0};
  std::optional<int64_t> pca_dim;  // fd-pca: components (unset = default_pca_dim)
  int64_t bootstrap = 0;           // replicates of the percentile intervals (0 = none)
  double level = 0.95;             // their confidence level
  bool keep_replicates = false;    // also return every replicate value ("bootstrap_replicates")
  bool cli_names = false;          // errors name options as --max-points (CLI), not max_points (Python)

  // The name of a field or input ("samples", "reference", "pca_data", "pca_dim", ...) as the user typed it.
  std::string arg(std::string_view field) const;
  void validate() const;
};

// The metrics with a bootstrap interval, and those without (w2: a resample's duplicates shrink the
// distinct support that the exact matching sees, so its small-sample bias grows and the replicates
// sit above the estimate, at O(k^3) each; prd: duplicates have k-NN radius 0).
bool metric_has_interval(std::string_view metric);

// Evaluates `samples` (n, d) against `reference` (m, d); `pca_data` (N, d) is the training set of
// fd-pca (required with it, refused without it; n = 0 for none). Inputs finite, n, m >= 2. Keys:
//   n, m, d, seed; energy; mmd2, mmd2_per_bandwidth, mmd_median_distance, mmd_scales, mmd_bandwidths,
//   mmd_gammas (= 1 / (2 sigma^2)), mmd_estimator; sw2, sw2_projections; mean_marginal_w1; frechet;
//   frechet_pca, frechet_pca_dim, frechet_pca_explained_variance, frechet_pca_train_points; w2,
//   w2_points; precision, recall, prd_k; with bootstrap > 0, "<key>_ci": [lo, hi] for each metric
//   with an interval and "bootstrap": {replicates, level, method, seed, resampled, no_interval}.
// Bootstrap replicate r resamples both sets with bootstrap_indices(n, seed, r, 0 / 1) and recomputes
// each metric with the point estimate's fixed choices (MMD bandwidths, sw2 directions, PCA basis);
// energy and MMD exclude the pairs of copies of one row from their within-sample terms, as the
// U-statistics exclude the diagonal.
nlohmann::json evaluate(PointsView samples, PointsView reference, PointsView pca_data, const EvalOptions& options,
                        const Context& ctx = {});

}  // namespace otgen
