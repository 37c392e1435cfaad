#include "otgen/metrics/metrics.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "otgen/ot/assignment.h"
#include "otgen/core/blas_threads.h"
#include "otgen/core/error.h"
#include "otgen/ot/pca.h"
#include "otgen/core/rng.h"
#include "otgen/kernels/scores.h"
#include "otgen/core/streams.h"
#include "metrics/ustat.h"

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

// c = a b for n x n row-major matrices (DGEMM on one OpenBLAS thread).
std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, int n) {
  BlasSingleThread blas_guard;
  std::vector<double> c(static_cast<size_t>(n) * n, 0.0);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a.data(), n, b.data(), n, 0.0, c.data(), n);
  return c;
}

// The symmetric PSD square root V diag(sqrt(max(w, 0))) V^T.
std::vector<double> psd_sqrt(std::vector<double> a, int n) {
  std::vector<double> w;
  symmetric_eigen(a, w, n);
  // a holds V column-major, i.e. V^T row-major: scale its row k by sqrt(w_k), then out = V^T' V^T.
  std::vector<double> scaled(a);
  for (int k = 0; k < n; ++k) {
    const double s = std::sqrt(std::sqrt(std::max(w[k], 0.0)));
    for (int i = 0; i < n; ++i) scaled[static_cast<size_t>(k) * n + i] *= s;
  }
  BlasSingleThread blas_guard;
  std::vector<double> out(static_cast<size_t>(n) * n, 0.0);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, n, 1.0, scaled.data(), n, 0.0, out.data(), n);
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) out[static_cast<size_t>(j) * n + i] = out[static_cast<size_t>(i) * n + j];
  return out;
}

// |mu_x - mu_y|^2 + tr(Sx + Sy - 2 (Sx^1/2 Sy Sx^1/2)^1/2) from the moments of two Gaussians in R^d.
double frechet_from_moments(const std::vector<double>& mx, const std::vector<double>& sx, const std::vector<double>& my,
                            const std::vector<double>& sy, int d) {
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

// Sums over all pairs of sum_a exp(-alphas[a] |a_i - b_j|^2), one per bandwidth.
std::vector<double> kernel_sums(PointsView a, PointsView b, std::span<const double> alphas, const Context& ctx) {
  const size_t A = alphas.size();
  std::vector<double> rows(a.n * A), out(A, 0.0);
  kernel_row_sums(a, b, alphas, rows, ctx);
  for (int64_t i = 0; i < a.n; ++i)
    for (size_t k = 0; k < A; ++k) out[k] += rows[i * A + k];
  return out;
}

void check_alphas(std::span<const double> alphas) {
  require(!alphas.empty(), "alphas", "an empty list", "at least one bandwidth");
  for (double a : alphas) require(a > 0 && std::isfinite(a), "alphas", a, "positive finite inverse squared bandwidths");
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

namespace detail {

double energy_distance_excluding(PointsView x, PointsView y, double copies_x, double copies_y, const Context& ctx) {
  const double n = static_cast<double>(x.n), m = static_cast<double>(y.n);
  const double xy = mean_distance(x, y, ctx) / (n * m);
  // The diagonal and the pairs of copies are at distance 0 (up to the engine's rounding).
  const double xx = mean_distance(x, x, ctx) / (n * (n - 1) - copies_x);
  const double yy = mean_distance(y, y, ctx) / (m * (m - 1) - copies_y);
  return 2 * xy - xx - yy;
}

std::vector<double> mmd2_excluding(PointsView x, PointsView y, std::span<const double> alphas, double copies_x,
                                   double copies_y, const Context& ctx) {
  const double n = static_cast<double>(x.n), m = static_cast<double>(y.n);
  const std::vector<double> kxx = kernel_sums(x, x, alphas, ctx), kyy = kernel_sums(y, y, alphas, ctx),
                            kxy = kernel_sums(x, y, alphas, ctx);
  std::vector<double> out(alphas.size());
  for (size_t a = 0; a < alphas.size(); ++a)  // drop the diagonal and the copies, where each kernel is exp(0) = 1
    out[a] = (kxx[a] - n - copies_x) / (n * (n - 1) - copies_x) + (kyy[a] - m - copies_y) / (m * (m - 1) - copies_y) -
             2 * kxy[a] / (n * m);
  return out;
}

}  // namespace detail

double energy_distance(PointsView x, PointsView y, const Context& ctx) {
  check_clouds(x, y, 2);
  return detail::energy_distance_excluding(x, y, 0, 0, ctx);
}

double mmd2(PointsView x, PointsView y, std::span<const double> alphas, bool biased, const Context& ctx) {
  check_clouds(x, y, biased ? 1 : 2);
  check_alphas(alphas);
  if (!biased) return sum_of(detail::mmd2_excluding(x, y, alphas, 0, 0, ctx));
  const double n = static_cast<double>(x.n), m = static_cast<double>(y.n);
  return sum_of(kernel_sums(x, x, alphas, ctx)) / (n * n) + sum_of(kernel_sums(y, y, alphas, ctx)) / (m * m) -
         2 * sum_of(kernel_sums(x, y, alphas, ctx)) / (n * m);
}

std::vector<double> mmd2_per_bandwidth(PointsView x, PointsView y, std::span<const double> alphas, const Context& ctx) {
  check_clouds(x, y, 2);
  check_alphas(alphas);
  return detail::mmd2_excluding(x, y, alphas, 0, 0, ctx);
}

double median_distance(PointsView x, PointsView y, int64_t per_side) {
  require(per_side >= 1, "per_side", per_side, "a positive integer");
  require(x.d >= 1 && x.d == y.d, "y", "dimension " + std::to_string(y.d), "the dimension of x, " + std::to_string(x.d));
  std::vector<const float*> rows;
  for (PointsView p : {x, y}) {
    const int64_t count = std::min(p.n, per_side);
    for (int64_t i = 0; i < count; ++i) rows.push_back(p.row(i * p.n / count));
  }
  std::vector<double> dist;
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = i + 1; j < rows.size(); ++j) {
      const double s = squared_distance(rows[i], rows[j], x.d);
      if (s > 0) dist.push_back(std::sqrt(s));
    }
  if (dist.empty()) return 1.0;
  std::nth_element(dist.begin(), dist.begin() + dist.size() / 2, dist.end());
  return dist[dist.size() / 2];
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
  std::vector<double> mx, my, sx, sy;
  mean_cov(x.data, x.n, x.d, mx, sx);
  mean_cov(y.data, y.n, y.d, my, sy);
  return frechet_from_moments(mx, sx, my, sy, static_cast<int>(x.d));
}

double frechet_distance(PointsView x, PointsView y, const PcaBasis& basis) {
  require(basis.dim >= 1 && basis.components.size() == static_cast<size_t>(basis.dim * basis.d) &&
              basis.mean.size() == static_cast<size_t>(basis.d),
          "basis", "an empty or inconsistent PcaBasis", "one made by pca_basis");
  for (auto [p, name] : {std::pair{x, "x"}, std::pair{y, "y"}}) {
    require(p.d == basis.d, name, "dimension " + std::to_string(p.d),
            "the training set's dimension " + std::to_string(basis.d));
    require(p.n >= 2, name, std::to_string(p.n) + " points", "at least 2");
    require_finite(p, name);
  }
  const int64_t d = basis.d, k = basis.dim;
  // Projections in float64: blocks of centred rows times the components (DGEMM, one thread).
  auto project = [&](PointsView p) {
    std::vector<double> z(static_cast<size_t>(p.n * k));
    constexpr int64_t kBlock = 256;
    std::vector<double> block(static_cast<size_t>(std::min(p.n, kBlock) * d));
    BlasSingleThread blas_guard;
    for (int64_t i0 = 0; i0 < p.n; i0 += kBlock) {
      const int64_t rows = std::min(kBlock, p.n - i0);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t c = 0; c < d; ++c) block[i * d + c] = static_cast<double>(p.row(i0 + i)[c]) - basis.mean[c];
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(k),
                  static_cast<int>(d), 1.0, block.data(), static_cast<int>(d), basis.components.data(),
                  static_cast<int>(d), 0.0, z.data() + i0 * k, static_cast<int>(k));
    }
    return z;
  };
  std::vector<double> mx, my, sx, sy;
  const std::vector<double> zx = project(x), zy = project(y);
  mean_cov(zx.data(), x.n, k, mx, sx);
  mean_cov(zy.data(), y.n, k, my, sy);
  return frechet_from_moments(mx, sx, my, sy, static_cast<int>(k));
}

std::vector<int64_t> bootstrap_indices(int64_t n, uint64_t seed, int64_t replicate, int side) {
  require(n >= 2, "n", n, "at least 2 rows to resample");
  require(replicate >= 0, "replicate", replicate, "a non-negative index");
  require(side == 0 || side == 1, "side", side, "0 (samples) or 1 (reference)");
  Rng rng(stream_key(seed, Stream::Bootstrap, static_cast<uint64_t>(replicate)), static_cast<uint64_t>(side));
  std::vector<int64_t> idx(n);
  while (true) {
    for (auto& i : idx) i = rng.below(n);
    if (std::any_of(idx.begin(), idx.end(), [&](int64_t i) { return i != idx[0]; })) return idx;
  }
}

Interval percentile_interval(std::vector<double> values, double level) {
  require(!values.empty(), "values", "an empty list", "at least one bootstrap value");
  require(level > 0 && level < 1, "level", level, "a confidence level in (0, 1)");
  for (double v : values) require(std::isfinite(v), "values", v, "finite bootstrap values");
  std::sort(values.begin(), values.end());
  auto quantile = [&](double q) {  // numpy's "linear" method, with its two-sided lerp
    const double pos = q * static_cast<double>(values.size() - 1);
    const size_t lo = std::min(static_cast<size_t>(std::floor(pos)), values.size() - 1);
    const size_t hi = std::min(lo + 1, values.size() - 1);
    const double t = pos - static_cast<double>(lo), a = values[lo], b = values[hi], diff = b - a;
    return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
  };
  return {quantile((1 - level) / 2), quantile((1 + level) / 2)};
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
