// Principal directions and the symmetric eigendecomposition (otgen/ot/pca.h).
#include "otgen/ot/pca.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "otgen/core/blas_threads.h"
#include "otgen/core/error.h"

extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info);

namespace otgen {

namespace {

template <class T>
void mean_cov_impl(const T* data, int64_t n, int64_t d, std::vector<double>& mu, std::vector<double>& cov,
                   std::span<const double> w) {
  const bool weighted = !w.empty();
  mu.assign(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) mu[k] += (weighted ? w[i] : 1.0) * static_cast<double>(data[i * d + k]);
  if (!weighted)
    for (auto& v : mu) v /= static_cast<double>(n);
  cov.assign(static_cast<size_t>(d * d), 0.0);
  constexpr int64_t kBlock = 256;
  std::vector<double> block(static_cast<size_t>(std::min(n, kBlock) * d));
  BlasSingleThread blas_guard;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t b = std::min(kBlock, n - i0);
    for (int64_t i = 0; i < b; ++i) {
      const double s = weighted ? std::sqrt(w[i0 + i]) : 1.0;  // sum_j w_j c_j c_j^T as a plain DSYRK
      for (int64_t k = 0; k < d; ++k) block[i * d + k] = s * (static_cast<double>(data[(i0 + i) * d + k]) - mu[k]);
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(d), static_cast<int>(b), 1.0, block.data(),
                static_cast<int>(d), 1.0, cov.data(), static_cast<int>(d));
  }
  const double scale = weighted ? 1.0 : 1.0 / static_cast<double>(n - 1);
  for (int64_t a = 0; a < d; ++a)
    for (int64_t b = a; b < d; ++b) cov[b * d + a] = cov[a * d + b] *= scale;
}

// The top k eigenvectors of cov (d x d) into basis (signed: largest-magnitude entry positive).
void top_components(std::vector<double> cov, int64_t d, int64_t k, PcaBasis& basis) {
  basis.d = d;
  basis.dim = k;
  basis.total_variance = 0;
  for (int64_t c = 0; c < d; ++c) basis.total_variance += cov[c * d + c];
  std::vector<double> w;
  symmetric_eigen(cov, w, static_cast<int>(d));  // ascending; eigenvector j at cov[j * d ..]
  basis.components.resize(static_cast<size_t>(k * d));
  basis.variances.clear();
  for (int64_t c = 0; c < k; ++c) {
    const int64_t j = d - 1 - c;
    const double* v = cov.data() + j * d;
    int64_t big = 0;
    for (int64_t i = 1; i < d; ++i)
      if (std::abs(v[i]) > std::abs(v[big])) big = i;
    const double sign = v[big] < 0 ? -1.0 : 1.0;
    for (int64_t i = 0; i < d; ++i) basis.components[c * d + i] = sign * v[i];
    basis.variances.push_back(std::max(w[j], 0.0));
  }
}

}  // namespace

void symmetric_eigen(std::vector<double>& a, std::vector<double>& w, int n) {
  BlasSingleThread blas_guard;
  w.assign(n, 0.0);
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_("V", "U", &n, a.data(), &n, w.data(), &work_query, &lwork, &iwork_query, &liwork, &info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(lwork);
  std::vector<int> iwork(liwork);
  dsyevd_("V", "U", &n, a.data(), &n, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
  if (info != 0)
    throw Error("the symmetric eigendecomposition (LAPACK dsyevd) of a " + std::to_string(n) + " x " + std::to_string(n) +
                " covariance did not converge (info " + std::to_string(info) + ")");
}

void mean_cov(const float* data, int64_t n, int64_t d, std::vector<double>& mu, std::vector<double>& cov,
              std::span<const double> weights) {
  mean_cov_impl(data, n, d, mu, cov, weights);
}

void mean_cov(const double* data, int64_t n, int64_t d, std::vector<double>& mu, std::vector<double>& cov,
              std::span<const double> weights) {
  mean_cov_impl(data, n, d, mu, cov, weights);
}

int64_t default_pca_dim(int64_t d, int64_t train_points) {
  return std::max<int64_t>(1, std::min({d, int64_t{64}, train_points - 1}));
}

PcaBasis pca_basis(PointsView train, std::optional<int64_t> dim) {
  require(train.d >= 1, "train", "points of dimension 0", "dimension >= 1");
  require(train.n >= 2, "train", std::to_string(train.n) + " points", "at least 2");
  require_finite(train, "train");
  const int64_t limit = std::min(train.d, train.n - 1);
  const int64_t k = dim.value_or(default_pca_dim(train.d, train.n));
  require(k >= 1 && k <= limit, "dim", k,
          "an integer in [1, min(d, N - 1)] = [1, " + std::to_string(limit) + "] for N = " + std::to_string(train.n) +
              " training points of dimension d = " + std::to_string(train.d));
  PcaBasis b;
  b.train_points = train.n;
  std::vector<double> cov;
  mean_cov(train.data, train.n, train.d, b.mean, cov);
  top_components(std::move(cov), train.d, k, b);
  return b;
}

PcaBasis pca_basis(PointsView points, std::span<const double> weights, int64_t dim, std::string_view argument) {
  require(points.n >= 1 && points.d >= 1, argument, dim, "a dimension for non-empty data");
  require(dim >= 1 && dim <= points.d, argument, dim,
          "an integer in [1, d] = [1, " + std::to_string(points.d) + "] (the data's dimension)");
  require(weights.empty() || static_cast<int64_t>(weights.size()) == points.n, argument, dim,
          "one weight per point");
  PcaBasis b;
  b.train_points = points.n;
  std::vector<double> cov;
  if (weights.empty() && points.n == 1) {  // one point: no spread, any orthonormal basis
    b.mean.assign(points.row(0), points.row(0) + points.d);
    cov.assign(static_cast<size_t>(points.d * points.d), 0.0);
  } else {
    mean_cov(points.data, points.n, points.d, b.mean, cov, weights);
  }
  top_components(std::move(cov), points.d, dim, b);
  return b;
}

}  // namespace otgen
