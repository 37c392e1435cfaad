// Targets of the WFR samplers: double well, Gaussian mixtures (full covariances), named mixtures,
// user functors.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "otgen/core/error.h"
#include "otgen/core/memory.h"
#include "otgen/wfr/wfr.h"

namespace otgen::wfr {

Points Target::sample(int64_t, Rng&) const {
  fail_argument("target", name(), "a target with exact sampling (a Gaussian or a mixture)");
}

// ------------------------------------------------------------------------------------- double well

DoubleWell::DoubleWell(double H, double tilt) : H_(H), tilt_(tilt) {
  require(H > 0 && std::isfinite(H), "H", H, "a positive finite number");
  require(std::isfinite(tilt), "tilt", tilt, "a finite number");
}

std::string DoubleWell::name() const { return "doublewell(H=" + to_text(H_) + ")"; }

void DoubleWell::log_density(PointsView x, std::span<double> logp, std::span<double> grad) const {
  for (int64_t i = 0; i < x.n; ++i) {
    const double v = x.data[i];
    const double q = v * v - 1.0;
    logp[i] = -(H_ * q * q + tilt_ * v);
    if (!grad.empty()) grad[i] = -(4.0 * H_ * v * q + tilt_);
  }
}

double DoubleWell::barrier() const {
  // V'(x) = 4 H x (x^2 - 1) + tilt; the local maximum lies between the wells, near 0. Bisection on V'
  // over [-1/sqrt(3), 1/sqrt(3)], where V' is decreasing (V'' < 0) when a root exists there.
  auto dv = [&](double x) { return 4.0 * H_ * x * (x * x - 1.0) + tilt_; };
  double lo = -1.0 / std::sqrt(3.0), hi = 1.0 / std::sqrt(3.0);
  if (dv(lo) * dv(hi) > 0) return 0.0;  // no barrier (tilt too strong): a single well
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    if ((dv(mid) > 0) == (dv(lo) > 0)) lo = mid; else hi = mid;
  }
  return 0.5 * (lo + hi);
}

double DoubleWell::left_well_mass() const {
  // Composite Simpson on [-L, x*] and [x*, L]; exp(-V + Vmin) is negligible beyond |x| = 3 for H >= 0.5
  // (V(3) >= 64 H - 1.5).
  const double xs = barrier();
  const double L = 4.0;
  auto f = [&](double x) { const double q = x * x - 1; return -(H_ * q * q + tilt_ * x); };
  double vmax = -1e300;
  for (int k = 0; k <= 8000; ++k) vmax = std::max(vmax, f(-L + 2 * L * k / 8000.0));
  auto simpson = [&](double a, double b) {
    const int n = 200000;  // even
    const double h = (b - a) / n;
    double s = std::exp(f(a) - vmax) + std::exp(f(b) - vmax);
    for (int k = 1; k < n; ++k) s += (k % 2 ? 4.0 : 2.0) * std::exp(f(a + k * h) - vmax);
    return s * h / 3.0;
  };
  const double left = simpson(-L, xs), right = simpson(xs, L);
  return left / (left + right);
}

double DoubleWell::mass_left_of_barrier(const WeightedParticles& p) const {
  require(p.dim() == 1, "particles", "dimension " + std::to_string(p.dim()), "1-D particles of the double well");
  const auto w = p.weights();
  const double xs = barrier();
  double left = 0;
  for (int64_t i = 0; i < p.size(); ++i)
    if (p.x.row(i)[0] < xs) left += w[i];
  return left;
}

// ---------------------------------------------------------------------------------- mixtures

namespace {

// Cholesky S = L L^T (lower, row-major d x d); throws unless positive definite.
std::vector<double> cholesky(std::span<const double> S, int64_t d, int64_t k) {
  std::vector<double> L(d * d, 0.0);
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      double s = S[i * d + j];
      for (int64_t t = 0; t < j; ++t) s -= L[i * d + t] * L[j * d + t];
      if (i == j) {
        require(s > 0 && std::isfinite(s), "covariances", "component " + std::to_string(k),
                "symmetric positive definite matrices");
        L[i * d + i] = std::sqrt(s);
      } else {
        L[i * d + j] = s / L[j * d + j];
      }
    }
  }
  return L;
}

// Inverse of S from its Cholesky factor.
std::vector<double> inverse_from_cholesky(const std::vector<double>& L, int64_t d) {
  std::vector<double> inv(d * d, 0.0), col(d);
  for (int64_t c = 0; c < d; ++c) {
    // solve L y = e_c, then L^T z = y
    for (int64_t i = 0; i < d; ++i) {
      double s = (i == c) ? 1.0 : 0.0;
      for (int64_t t = 0; t < i; ++t) s -= L[i * d + t] * col[t];
      col[i] = s / L[i * d + i];
    }
    for (int64_t i = d - 1; i >= 0; --i) {
      double s = col[i];
      for (int64_t t = i + 1; t < d; ++t) s -= L[t * d + i] * col[t];
      col[i] = s / L[i * d + i];
    }
    for (int64_t i = 0; i < d; ++i) inv[i * d + c] = col[i];
  }
  return inv;
}

}  // namespace

GaussianMixture::GaussianMixture(std::vector<double> weights, std::vector<double> means,
                                 std::vector<double> covariances, int64_t d, std::string name, double log_scale)
    : K_(static_cast<int64_t>(weights.size())), d_(d), name_(std::move(name)), log_scale_(log_scale) {
  require(d >= 1, "d", d, "a positive dimension");
  require(K_ >= 1, "weights", "0 components", "at least one component");
  require(static_cast<int64_t>(means.size()) == K_ * d, "means", std::to_string(means.size()) + " values",
          "K * d = " + std::to_string(K_ * d));
  require(static_cast<int64_t>(covariances.size()) == K_ * d * d, "covariances",
          std::to_string(covariances.size()) + " values", "K * d * d = " + std::to_string(K_ * d * d));
  require(std::isfinite(log_scale), "log_scale", log_scale, "a finite number");
  double total = 0;
  for (double w : weights) {
    require(w > 0 && std::isfinite(w), "weights", w, "positive finite weights");
    total += w;
  }
  require_finite(std::span<const double>(means), "means");
  require_finite(std::span<const double>(covariances), "covariances");
  w_.resize(K_);
  logw_.resize(K_);
  for (int64_t k = 0; k < K_; ++k) {
    w_[k] = weights[k] / total;
    logw_[k] = std::log(w_[k]);
  }
  means_ = std::move(means);
  chol_.resize(K_ * d * d);
  prec_.resize(K_ * d * d);
  logdet_.resize(K_);
  for (int64_t k = 0; k < K_; ++k) {
    std::span<const double> S(covariances.data() + k * d * d, d * d);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < i; ++j)
        require(std::abs(S[i * d + j] - S[j * d + i]) <= 1e-9 * (1 + std::abs(S[i * d + j])), "covariances",
                "component " + std::to_string(k), "symmetric matrices");
    auto L = cholesky(S, d, k);
    auto P = inverse_from_cholesky(L, d);
    double ld = 0;
    for (int64_t i = 0; i < d; ++i) ld += 2.0 * std::log(L[i * d + i]);
    std::copy(L.begin(), L.end(), chol_.begin() + k * d * d);
    std::copy(P.begin(), P.end(), prec_.begin() + k * d * d);
    logdet_[k] = ld;
  }
}

void GaussianMixture::log_density(PointsView x, std::span<double> logp, std::span<double> grad) const {
  const int64_t d = d_;
  const double c0 = -0.5 * d * std::log(2.0 * std::numbers::pi);
  std::vector<double> diff(d), pd(K_ * d), lk(K_), e(K_), cst(K_);
  for (int64_t k = 0; k < K_; ++k) cst[k] = logw_[k] + c0 - 0.5 * logdet_[k];
  for (int64_t i = 0; i < x.n; ++i) {
    const float* xi = x.row(i);
    double mx = -1e300;
    for (int64_t k = 0; k < K_; ++k) {
      const double* m = means_.data() + k * d;
      const double* P = prec_.data() + k * d * d;
      double q = 0;
      if (d == 2) {  // the common 2-D case, unrolled
        const double u = xi[0] - m[0], v = xi[1] - m[1];
        const double p0 = P[0] * u + P[1] * v, p1 = P[2] * u + P[3] * v;
        pd[k * 2] = p0;
        pd[k * 2 + 1] = p1;
        q = u * p0 + v * p1;
      } else {
        for (int64_t a = 0; a < d; ++a) diff[a] = xi[a] - m[a];
        for (int64_t a = 0; a < d; ++a) {
          double s = 0;
          for (int64_t b = 0; b < d; ++b) s += P[a * d + b] * diff[b];
          pd[k * d + a] = s;
          q += diff[a] * s;
        }
      }
      lk[k] = cst[k] - 0.5 * q;
      mx = std::max(mx, lk[k]);
    }
    // responsibilities from one exp per component; terms below e^-80 relative are dropped (they cannot
    // change a double sum, and skipping them avoids libm's slow underflow path)
    double s = 0;
    for (int64_t k = 0; k < K_; ++k) s += (e[k] = lk[k] - mx > -80.0 ? std::exp(lk[k] - mx) : 0.0);
    logp[i] = mx + std::log(s) + log_scale_;
    if (!grad.empty()) {
      for (int64_t a = 0; a < d; ++a) grad[i * d + a] = 0;
      for (int64_t k = 0; k < K_; ++k) {
        if (e[k] == 0.0) continue;
        const double r = e[k] / s;
        for (int64_t a = 0; a < d; ++a) grad[i * d + a] -= r * pd[k * d + a];
      }
    }
  }
}

Points GaussianMixture::sample_component(int64_t k, int64_t n, Rng& rng) const {
  require(k >= 0 && k < K_, "component", k + 1, "1.." + std::to_string(K_));
  require(n >= 0, "n", n, "a non-negative count");
  Points out(n, d_);
  std::vector<double> z(d_);
  const double* L = chol_.data() + k * d_ * d_;
  const double* m = means_.data() + k * d_;
  for (int64_t i = 0; i < n; ++i) {
    rng.fill_normal(std::span<double>(z));
    for (int64_t a = 0; a < d_; ++a) {
      double s = m[a];
      for (int64_t b = 0; b <= a; ++b) s += L[a * d_ + b] * z[b];
      out.row(i)[a] = static_cast<float>(s);
    }
  }
  return out;
}

Points GaussianMixture::sample(int64_t n, Rng& rng) const {
  require(n >= 0, "n", n, "a non-negative count");
  Points out(n, d_);
  for (int64_t i = 0; i < n; ++i) {
    const double u = rng.uniform();
    int64_t k = 0;
    double c = w_[0];
    while (u > c && k + 1 < K_) c += w_[++k];
    Points one = sample_component(k, 1, rng);
    std::copy(one.data.begin(), one.data.end(), out.row(i));
  }
  return out;
}

std::unique_ptr<GaussianMixture> make_gaussian(std::vector<double> mean, std::vector<double> cov) {
  const int64_t d = static_cast<int64_t>(mean.size());
  return std::make_unique<GaussianMixture>(std::vector<double>{1.0}, std::move(mean), std::move(cov), d, "gaussian");
}

std::unique_ptr<GaussianMixture> make_standard_normal(int64_t d) {
  require(d >= 1, "dim", d, "a positive dimension");
  require_memory("dim", d, 24.0 * static_cast<double>(d) * static_cast<double>(d),
                 "the d x d covariance, its Cholesky factor and inverse");
  std::vector<double> cov(d * d, 0.0);
  for (int64_t a = 0; a < d; ++a) cov[a * d + a] = 1.0;
  return make_gaussian(std::vector<double>(d, 0.0), std::move(cov));
}

std::unique_ptr<GaussianMixture> make_named_mixture(std::string_view name) {
  if (name == "mixture4-lln") {
    std::vector<double> means{0, 8, 0, 2, -3, 5, 3, 5};
    std::vector<double> covs{1.2, 0, 0, 0.01, 1.2, 0, 0, 0.01, 0.01, 0, 0, 2, 0.01, 0, 0, 2};
    return std::make_unique<GaussianMixture>(std::vector<double>{1, 1, 1, 1}, means, covs, 2, "mixture4-lln");
  }
  if (name == "mixture4-cp") {
    std::vector<double> means{3, 3, 9, 10, 2, 2, 10, 4};
    const double a = 0.8377, b = 0.6701;
    std::vector<double> covs{0.7, -0.7 * a, -0.7 * a, 0.7,  0.7, 0.7 * a, 0.7 * a, 0.7,
                             0.7, -0.7 * a, -0.7 * a, 0.7,  2.0, -2.0 * b, -2.0 * b, 2.0};
    return std::make_unique<GaussianMixture>(std::vector<double>{1.0 / 3, 1.0 / 6, 1.0 / 3, 1.0 / 6}, means, covs,
                                             2, "mixture4-cp");
  }
  if (name == "mixture20d") {
    const int64_t d = 20;
    std::vector<double> C(d * d), M(d * d, 1.0);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) C[i * d + j] = std::pow(0.3, std::abs(static_cast<double>(i - j)));
    M[0 * d + 1] = M[1 * d + 0] = M[2 * d + 3] = M[3 * d + 2] = -1.0;
    std::vector<double> MC(d * d);
    for (int64_t i = 0; i < d * d; ++i) MC[i] = M[i] * C[i];
    auto L = cholesky(MC, d, 2);
    auto S3 = inverse_from_cholesky(L, d);
    std::vector<double> means(3 * d), covs(3 * d * d);
    for (int64_t a = 0; a < d; ++a) {
      means[a] = 3.0;
      means[d + a] = 4.0;
      means[2 * d + a] = (a % 2 == 0) ? 2.0 : 5.0;
    }
    for (int64_t i = 0; i < d * d; ++i) {
      covs[i] = 2.0 * C[i];
      covs[d * d + i] = 2.0 * C[i];
      covs[2 * d * d + i] = S3[i];
    }
    // symmetrise the inverse against rounding
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < i; ++j) {
        const double s = 0.5 * (covs[2 * d * d + i * d + j] + covs[2 * d * d + j * d + i]);
        covs[2 * d * d + i * d + j] = covs[2 * d * d + j * d + i] = s;
      }
    return std::make_unique<GaussianMixture>(std::vector<double>{0.5, 1.0 / 3, 1.0 / 6}, means, covs, d, "mixture20d");
  }
  fail_argument("target", name, "one of mixture4-lln, mixture4-cp, mixture20d");
}

FunctionTarget::FunctionTarget(int64_t d, Fn fn, std::string name, std::optional<double> log_normaliser)
    : d_(d), fn_(std::move(fn)), name_(std::move(name)), log_z_(log_normaliser) {
  require(d >= 1, "d", d, "a positive dimension");
  require(static_cast<bool>(fn_), "fn", "empty", "a callable");
}

void FunctionTarget::log_density(PointsView x, std::span<double> logp, std::span<double> grad) const {
  fn_(x, logp, grad);
}

std::unique_ptr<Target> make_target(std::string_view name, double H, int64_t d) {
  if (name == "gaussian") return make_standard_normal(d);
  std::unique_ptr<Target> t;
  if (name == "doublewell") t = std::make_unique<DoubleWell>(H);
  else if (name == "mixture4-lln" || name == "mixture4-cp" || name == "mixture20d") t = make_named_mixture(name);
  else fail_argument("target", name, "one of doublewell, gaussian, mixture4-lln, mixture4-cp, mixture20d");
  // Only the gaussian's dimension is chosen; the others have their own (1 = not given).
  require(d == 1 || d == t->dim(), "dim", d,
          std::to_string(t->dim()) + " (" + std::string(name) + " has a fixed dimension; dim sets the gaussian's)");
  return t;
}

}  // namespace otgen::wfr
