// Principal directions of a point cloud and the dense symmetric linear algebra behind them (ot layer):
// the feature space of the Frechet distance without Inception (otgen/metrics/metrics.h) and the span in which
// PCA-reduced semidiscrete OT matches (SemidiscreteOT::Options::pca, docs/semidiscrete.md).
// Everything runs in float64 on one OpenBLAS thread (LAPACK dsyevd, DSYRK), so results do not depend
// on thread counts. Cost O(N d^2 + d^3) time, O(d^2) memory (d = 784: well under a second for the
// eigendecomposition).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "otgen/core/points.h"

namespace otgen {

// Symmetric eigendecomposition (LAPACK dsyevd): a (n x n, row-major = column-major for symmetric) is
// overwritten by the eigenvectors (eigenvector j at a[j * n ..]), w gets the eigenvalues ascending.
// Throws otgen::Error when LAPACK does not converge.
void symmetric_eigen(std::vector<double>& a, std::vector<double>& w, int n);

// Mean and covariance (float64) of n rows of dimension d stored row-major at `data`. weights empty:
// the sample covariance (1/(n - 1); n >= 2); else w_j >= 0 summing to 1 (length n):
// mu = sum_j w_j y_j and cov = sum_j w_j (y_j - mu)(y_j - mu)^T. Two passes, the centred rows folded
// into the covariance in blocks by DSYRK.
void mean_cov(const float* data, int64_t n, int64_t d, std::vector<double>& mu, std::vector<double>& cov,
              std::span<const double> weights = {});
void mean_cov(const double* data, int64_t n, int64_t d, std::vector<double>& mu, std::vector<double>& cov,
              std::span<const double> weights = {});

// The principal directions of a training set: the top `dim` eigenvectors of its float64 covariance,
// by decreasing variance, each signed so that its largest-magnitude entry is positive. Tied
// eigenvalues at the cut leave the subspace non-unique (LAPACK's choice is deterministic).
struct PcaBasis {
  int64_t d = 0;                   // input dimension
  int64_t dim = 0;                 // number of components
  int64_t train_points = 0;        // N
  std::vector<double> mean;        // (d) training mean (weighted when weights were given)
  std::vector<double> components;  // (dim, d) row-major, orthonormal rows
  std::vector<double> variances;   // (dim) their variances (eigenvalues), decreasing, >= 0
  double total_variance = 0;       // trace of the training covariance
};

// The default number of components: min(d, 64, N - 1) (N - 1 bounds the covariance's rank).
int64_t default_pca_dim(int64_t d, int64_t train_points);

// The basis of `train` (N >= 2 finite points; errors name "train"), sample covariance (1/(N - 1));
// dim (errors name "dim") in [1, min(d, N - 1)], std::nullopt = default_pca_dim.
PcaBasis pca_basis(PointsView train, std::optional<int64_t> dim = std::nullopt);

// The basis for matching: the weighted covariance of mean_cov (weights empty = uniform, 1/(N - 1)),
// any N >= 1 and dim in [1, d] (errors name `argument`); directions beyond the covariance's rank
// complete an orthonormal basis (LAPACK's deterministic choice). points finite (the caller checks).
PcaBasis pca_basis(PointsView points, std::span<const double> weights, int64_t dim, std::string_view argument);

}  // namespace otgen
