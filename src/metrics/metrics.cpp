#include "otgen/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "otgen/assignment.h"
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

// k points of x drawn without replacement (partial Fisher-Yates on stream (seed, stream)); all of x,
// in order, when k == n.
Points subsample(PointsView x, int64_t k, uint64_t seed, uint64_t stream) {
  Points out(k, x.d);
  std::vector<int64_t> idx(x.n);
  std::iota(idx.begin(), idx.end(), int64_t{0});
  if (k < x.n) {
    Rng rng(seed, stream);
    for (int64_t i = 0; i < k; ++i) std::swap(idx[i], idx[i + rng.below(x.n - i)]);
  }
  for (int64_t i = 0; i < k; ++i) std::copy(x.row(idx[i]), x.row(idx[i]) + x.d, out.row(i));
  return out;
}

double squared_distance(const float* a, const float* b, int64_t d) {
  double s = 0;
  for (int64_t c = 0; c < d; ++c) {
    const double t = static_cast<double>(a[c]) - static_cast<double>(b[c]);
    s += t * t;
  }
  return s;
}

// Squared k-NN radius of every point of a: the k-th smallest squared distance to the other points.
std::vector<double> knn_radii2(PointsView a, int64_t k, int threads) {
  std::vector<double> r2(a.n);
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> best(k);  // the k smallest so far, ascending
#pragma omp for schedule(dynamic, 16)
    for (int64_t i = 0; i < a.n; ++i) {
      std::fill(best.begin(), best.end(), std::numeric_limits<double>::infinity());
      for (int64_t j = 0; j < a.n; ++j) {
        if (j == i) continue;
        const double s = squared_distance(a.row(i), a.row(j), a.d);
        if (s >= best[k - 1]) continue;
        int64_t p = k - 1;  // insertion into the sorted list
        while (p > 0 && best[p - 1] > s) best[p] = best[p - 1], --p;
        best[p] = s;
      }
      r2[i] = best[k - 1];
    }
  }
  return r2;
}

// Fraction of the points of q within the ball (squared radius r2[i]) of at least one point i of c.
double fraction_covered(PointsView q, PointsView c, const std::vector<double>& r2, int threads) {
  int64_t covered = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16) reduction(+ : covered)
  for (int64_t j = 0; j < q.n; ++j)
    for (int64_t i = 0; i < c.n; ++i)
      if (squared_distance(q.row(j), c.row(i), q.d) <= r2[i]) {
        ++covered;
        break;
      }
  return static_cast<double>(covered) / static_cast<double>(q.n);
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

ExactW2 exact_w2(PointsView x, PointsView y, int64_t max_points, uint64_t seed, const Context& ctx) {
  check_clouds(x, y, 1);
  require(max_points >= 1, "max_points", max_points, "a positive integer");
  ctx.validate();
  const int64_t k = std::min({x.n, y.n, max_points});
  const Points xs = subsample(x, k, seed, 0), ys = subsample(y, k, seed, 1);
  const AssignmentResult r = exact_assignment(xs, ys, ctx);
  // The assignment's cost is |x - y|^2 / 2: twice the matching cost is the sum of squared distances.
  const double half_sq = matching_cost(xs, ys, r.permutation);
  return {std::sqrt(2.0 * half_sq / static_cast<double>(k)), k};
}

PrecisionRecall precision_recall(PointsView x_real, PointsView x_fake, int64_t k, const Context& ctx) {
  require(k >= 1, "k", k, "a positive integer");
  require(x_real.d >= 1 && x_real.d == x_fake.d, "x_fake", "dimension " + std::to_string(x_fake.d),
          "the dimension of x_real, " + std::to_string(x_real.d));
  require(x_real.n >= k + 1, "x_real", std::to_string(x_real.n) + " points", "at least k + 1 = " + std::to_string(k + 1));
  require(x_fake.n >= k + 1, "x_fake", std::to_string(x_fake.n) + " points", "at least k + 1 = " + std::to_string(k + 1));
  require_finite(x_real, "x_real");
  require_finite(x_fake, "x_fake");
  ctx.validate();
  const int threads = ctx.resolved_threads();
  const std::vector<double> real_r2 = knn_radii2(x_real, k, threads);
  const std::vector<double> fake_r2 = knn_radii2(x_fake, k, threads);
  return {fraction_covered(x_fake, x_real, real_r2, threads), fraction_covered(x_real, x_fake, fake_r2, threads)};
}

}  // namespace otgen
