#include "otgen/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "otgen/error.h"
#include "otgen/rng.h"
#include "otgen/scores.h"

extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info);

namespace otgen {

namespace {

void check_clouds(PointsView x, PointsView y, int64_t min_n) {
  require(x.d >= 1 && x.d == y.d, "y", "dimension " + std::to_string(y.d), "the dimension of x, " + std::to_string(x.d));
  require(x.n >= min_n, "x", std::to_string(x.n) + " points", "at least " + std::to_string(min_n));
  require(y.n >= min_n, "y", std::to_string(y.n) + " points", "at least " + std::to_string(min_n));
  require_finite(x, "x");
  require_finite(y, "y");
}

double sum_of(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

double mean_distance(PointsView a, PointsView b, const Context& ctx) {
  std::vector<double> rows(a.n);
  distance_row_sums(a, b, rows, ctx);
  return sum_of(rows);
}

// Symmetric eigendecomposition (LAPACK dsyevd): a (n x n, row-major = column-major for symmetric) is
// overwritten by the eigenvectors (columns in column-major), w gets the eigenvalues ascending.
void symmetric_eigen(std::vector<double>& a, std::vector<double>& w, int n) {
  w.assign(n, 0.0);
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_("V", "U", &n, a.data(), &n, w.data(), &work_query, &lwork, &iwork_query, &liwork, &info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(lwork);
  std::vector<int> iwork(liwork);
  dsyevd_("V", "U", &n, a.data(), &n, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
  if (info != 0) throw Error("frechet_distance: the eigendecomposition did not converge (LAPACK info " + std::to_string(info) + ")");
}

// The symmetric PSD square root V diag(sqrt(max(w, 0))) V^T.
std::vector<double> psd_sqrt(std::vector<double> a, int n) {
  std::vector<double> w;
  symmetric_eigen(a, w, n);
  std::vector<double> out(static_cast<size_t>(n) * n, 0.0);
  for (int k = 0; k < n; ++k) {
    const double s = std::sqrt(std::max(w[k], 0.0));
    const double* v = a.data() + static_cast<size_t>(k) * n;  // eigenvector k (column k, column-major)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) out[static_cast<size_t>(i) * n + j] += s * v[i] * v[j];
  }
  return out;
}

void mean_cov(PointsView x, std::vector<double>& mu, std::vector<double>& cov) {
  const int64_t d = x.d;
  mu.assign(d, 0.0);
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t k = 0; k < d; ++k) mu[k] += x.row(i)[k];
  for (auto& v : mu) v /= static_cast<double>(x.n);
  cov.assign(static_cast<size_t>(d * d), 0.0);
  std::vector<double> c(d);
  for (int64_t i = 0; i < x.n; ++i) {
    for (int64_t k = 0; k < d; ++k) c[k] = x.row(i)[k] - mu[k];
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = a; b < d; ++b) cov[a * d + b] += c[a] * c[b];
  }
  for (int64_t a = 0; a < d; ++a)
    for (int64_t b = a; b < d; ++b) cov[b * d + a] = cov[a * d + b] /= static_cast<double>(x.n - 1);
}

std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, int n) {
  std::vector<double> c(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < n; ++k) {
      const double aik = a[static_cast<size_t>(i) * n + k];
      for (int j = 0; j < n; ++j) c[static_cast<size_t>(i) * n + j] += aik * b[static_cast<size_t>(k) * n + j];
    }
  return c;
}

}  // namespace

double energy_distance(PointsView x, PointsView y, const Context& ctx) {
  check_clouds(x, y, 2);
  const double n = static_cast<double>(x.n), m = static_cast<double>(y.n);
  const double xy = mean_distance(x, y, ctx) / (n * m);
  const double xx = mean_distance(x, x, ctx) / (n * (n - 1));  // the diagonal is 0
  const double yy = mean_distance(y, y, ctx) / (m * (m - 1));
  return 2 * xy - xx - yy;
}

double mmd2(PointsView x, PointsView y, std::span<const double> alphas, bool biased, const Context& ctx) {
  check_clouds(x, y, biased ? 1 : 2);
  require(!alphas.empty(), "alphas", "an empty list", "at least one bandwidth");
  for (double a : alphas) require(a > 0 && std::isfinite(a), "alphas", a, "positive finite inverse squared bandwidths");
  const size_t A = alphas.size();
  auto total = [&](PointsView a, PointsView b) {
    std::vector<double> rows(a.n * A);
    kernel_row_sums(a, b, alphas, rows, ctx);
    return sum_of(rows);
  };
  const double n = static_cast<double>(x.n), m = static_cast<double>(y.n), K = static_cast<double>(A);
  double kxx = total(x, x), kyy = total(y, y);
  const double kxy = total(x, y) / (n * m);
  if (biased) {
    kxx /= n * n;
    kyy /= m * m;
  } else {  // drop the diagonal, where each of the A kernels is exp(0) = 1
    kxx = (kxx - n * K) / (n * (n - 1));
    kyy = (kyy - m * K) / (m * (m - 1));
  }
  return kxx + kyy - 2 * kxy;
}

double wasserstein_1d(std::vector<double> u, std::vector<double> v, double p) {
  require(!u.empty() && !v.empty(), "samples", "an empty sample", "at least one value on each side");
  require(p >= 1 && std::isfinite(p), "p", p, "p >= 1");
  std::sort(u.begin(), u.end());
  std::sort(v.begin(), v.end());
  // Walk the merged quantile levels k/n and l/m; between two levels both quantile functions are constant.
  const double n = static_cast<double>(u.size()), m = static_cast<double>(v.size());
  size_t i = 0, j = 0;
  double level = 0, total = 0;
  while (i < u.size() && j < v.size()) {
    const double next_u = (i + 1) / n, next_v = (j + 1) / m;
    const double next = std::min(next_u, next_v);
    total += (next - level) * std::pow(std::abs(u[i] - v[j]), p);
    level = next;
    if (next_u <= next) ++i;
    if (next_v <= next) ++j;
  }
  return total;
}

double sliced_w2(PointsView x, PointsView y, int64_t projections, uint64_t seed) {
  check_clouds(x, y, 1);
  require(projections >= 1, "projections", projections, "a positive count");
  double total = 0;
  std::vector<double> dir(x.d), pu(x.n), pv(y.n);
  for (int64_t l = 0; l < projections; ++l) {
    Rng rng(seed, static_cast<uint64_t>(l));
    double norm = 0;
    for (auto& c : dir) c = rng.normal(), norm += c * c;
    norm = std::sqrt(norm);
    for (auto& c : dir) c /= norm;
    auto project = [&](PointsView a, std::vector<double>& out) {
      for (int64_t i = 0; i < a.n; ++i) {
        double s = 0;
        for (int64_t k = 0; k < a.d; ++k) s += dir[k] * a.row(i)[k];
        out[i] = s;
      }
    };
    project(x, pu);
    project(y, pv);
    total += wasserstein_1d(pu, pv, 2.0);
  }
  return std::sqrt(total / static_cast<double>(projections));
}

double mean_marginal_w1(PointsView x, PointsView y) {
  check_clouds(x, y, 1);
  double total = 0;
  std::vector<double> u(x.n), v(y.n);
  for (int64_t k = 0; k < x.d; ++k) {
    for (int64_t i = 0; i < x.n; ++i) u[i] = x.row(i)[k];
    for (int64_t i = 0; i < y.n; ++i) v[i] = y.row(i)[k];
    total += wasserstein_1d(u, v, 1.0);
  }
  return total / static_cast<double>(x.d);
}

double frechet_distance(PointsView x, PointsView y) {
  check_clouds(x, y, 2);
  const int d = static_cast<int>(x.d);
  std::vector<double> mx, my, sx, sy;
  mean_cov(x, mx, sx);
  mean_cov(y, my, sy);
  double mean_term = 0;
  for (int k = 0; k < d; ++k) mean_term += (mx[k] - my[k]) * (mx[k] - my[k]);
  const std::vector<double> rx = psd_sqrt(sx, d);
  std::vector<double> inner = matmul(matmul(rx, sy, d), rx, d);
  for (int a = 0; a < d; ++a)  // symmetrise against rounding before the eigendecomposition
    for (int b = a + 1; b < d; ++b) inner[a * d + b] = inner[b * d + a] = 0.5 * (inner[a * d + b] + inner[b * d + a]);
  std::vector<double> w;
  symmetric_eigen(inner, w, d);
  double trace_sqrt = 0;
  for (double e : w) trace_sqrt += std::sqrt(std::max(e, 0.0));
  double trace = 0;
  for (int k = 0; k < d; ++k) trace += sx[k * d + k] + sy[k * d + k];
  return mean_term + trace - 2 * trace_sqrt;
}

}  // namespace otgen
