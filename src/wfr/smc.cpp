// Sequential Monte Carlo samplers (otgen/wfr/wfr.h): SMC-WFR and tempered SMC.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>
#include <sstream>
#include <string>

#include "otgen/core/error.h"
#include "otgen/core/progress.h"
#include "otgen/kernels/scores.h"
#include "otgen/wfr/wfr.h"
#include "wfr/sampler_state.h"

namespace otgen::wfr {

using detail::check_step;
using detail::lse;

namespace {

// ------------------------------------------------------------------------------------------ SMC-WFR

void smc_wfr_weights_impl(PointsView m, PointsView xnew, std::span<const double> log_w_prev,
                          std::span<const double> logp_new, double gamma, const Context& ctx, std::span<double> out) {
  const int64_t n = xnew.n;
  std::vector<float> lw;
  if (!log_w_prev.empty()) {
    lw.resize(m.n);
    for (int64_t j = 0; j < m.n; ++j) lw[j] = static_cast<float>(log_w_prev[j]);
  }
  std::vector<float> l(n);
  kernel_row_logsumexp(xnew, m, 1.0 / (4 * gamma), lw, l, ctx);
  const double c = -std::expm1(-gamma);
  for (int64_t i = 0; i < n; ++i)
    out[i] = (log_w_prev.empty() ? 0.0 : log_w_prev[i]) + c * (logp_new[i] - static_cast<double>(l[i]));
  const double z = lse(out);
  for (int64_t i = 0; i < n; ++i) out[i] -= z;
}

class SmcWfr final : public Sampler {
 public:
  explicit SmcWfr(SmcWfrOptions o) : o_(o) { o_.validate(); }
  std::string name() const override { return "smc-wfr"; }
  bool weighted() const override { return true; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.evaluate_current(); }
  bool step(State& s) override {
    const int64_t n = s.n, d = s.d;
    const double g = o_.step;
    if (o_.resample_every_step || s.p.ess() < o_.ess_threshold * n) s.resample(o_.resample);
    bool uniform = true;
    for (double v : s.p.logw) uniform = uniform && v == s.p.logw[0];
    Points m(n, d);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t a = 0; a < d; ++a)
        m.row(i)[a] = static_cast<float>(static_cast<double>(s.p.x.row(i)[a]) + g * s.grad[i * d + a]);
    Points xn = m;
    std::vector<double> zero(n * d, 0.0);
    s.langevin_move(xn, zero, g);
    s.p.x = std::move(xn);
    s.evaluate_current();
    std::vector<double> out(n);
    smc_wfr_weights_impl(m.view(), s.p.x.view(), uniform ? std::span<const double>() : std::span<const double>(s.p.logw),
                         s.logp, g, *s.ctx, out);
    s.p.logw = std::move(out);
    s.rec.ess = s.p.ess();
    return true;
  }

 private:
  SmcWfrOptions o_;
};

// ---------------------------------------------------------------------------------- tempered SMC

class TemperedSmc final : public Sampler {
 public:
  explicit TemperedSmc(TemperedSmcOptions o) : o_(o) { o_.validate(); }
  std::string name() const override { return "tempered-smc"; }
  bool weighted() const override { return true; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override {
    s.evaluate_current();
    lambda_ = 0;
    s.log_z = 0.0;
    ref_.assign(s.n, 0.0);
    for (int64_t i = 0; i < s.n; ++i) ref_[i] = log_ref(s.p.x.row(i), s.d);
  }
  bool step(State& s) override {
    const int64_t n = s.n;
    // log mu0 at the current positions (recomputed: resampling permutes the particles)
    for (int64_t i = 0; i < n; ++i) ref_[i] = log_ref(s.p.x.row(i), s.d);
    std::vector<double> ell(n);
    for (int64_t i = 0; i < n; ++i) ell[i] = s.logp[i] - ref_[i];
    double lam;
    if (o_.adaptive) {
      lam = next_lambda_adaptive(s, ell);
    } else {
      lam = (s.k == s.total_steps) ? 1.0 : 1.0 - std::exp(-s.k * o_.step);
      lam = std::max(lam, lambda_);
    }
    std::vector<double> inc(n);
    for (int64_t i = 0; i < n; ++i) inc[i] = s.p.logw[i] + (lam - lambda_) * ell[i];
    *s.log_z += lse(inc);  // logw is normalised
    s.p.logw = std::move(inc);
    s.p.normalise();
    lambda_ = lam;
    s.rec.ess = s.p.ess();
    s.rec.lambda = lam;
    // adaptive: the bisection leaves the ESS at target_ess * n, so resample every step before lambda = 1
    if (s.rec.ess < o_.ess_threshold * n || (o_.adaptive && lam < 1.0)) {
      s.resample(o_.resample);
      for (int64_t i = 0; i < n; ++i) ref_[i] = log_ref(s.p.x.row(i), s.d);
    }
    // MCMC moves targeting mu0^(1-l) pi^l
    int64_t accepted = 0;
    for (int mv = 0; mv < o_.moves; ++mv) accepted += move(s);
    if (o_.mala) s.rec.acceptance = static_cast<double>(accepted) / (n * o_.moves);
    return !(o_.adaptive && lambda_ >= 1.0);
  }

 private:
  double log_ref(const float* x, int64_t d) const {
    const double v = o_.reference_std * o_.reference_std;
    double q = 0;
    for (int64_t a = 0; a < d; ++a) {
      const double e = x[a] - o_.reference_mean;
      q += e * e;
    }
    return -0.5 * d * std::log(2 * std::numbers::pi * v) - 0.5 * q / v;
  }
  // grad and log of the path point at lambda for particle i
  void path_grad(const State& s, const float* x, const double* gt, std::span<double> out) const {
    const double v = o_.reference_std * o_.reference_std;
    for (int64_t a = 0; a < s.d; ++a) out[a] = (1 - lambda_) * (-(x[a] - o_.reference_mean) / v) + lambda_ * gt[a];
  }
  double next_lambda_adaptive(const State& s, const std::vector<double>& ell) const {
    const int64_t n = s.n;
    auto ess_at = [&](double lam) {
      std::vector<double> v(n);
      for (int64_t i = 0; i < n; ++i) v[i] = s.p.logw[i] + (lam - lambda_) * ell[i];
      const double z = lse(v);
      double s2 = 0;
      for (double a : v) s2 += std::exp(2 * (a - z));
      return 1.0 / s2;
    };
    const double target = o_.target_ess * n;
    if (ess_at(1.0) >= target) return 1.0;
    double lo = lambda_, hi = 1.0;
    for (int it = 0; it < 60; ++it) {
      const double mid = 0.5 * (lo + hi);
      if (ess_at(mid) >= target) lo = mid; else hi = mid;
    }
    return std::max(lo, std::nextafter(lambda_, 2.0));  // always advance
  }
  int64_t move(State& s) {
    const int64_t n = s.n, d = s.d;
    const double dt = o_.step;
    std::vector<double> gp(n * d);
    for (int64_t i = 0; i < n; ++i)
      path_grad(s, s.p.x.row(i), s.grad.data() + i * d, {gp.data() + i * d, size_t(d)});
    Points y = s.p.x;
    s.langevin_move(y, gp, dt);
    std::vector<double> lpy(n), gy(n * d);
    s.evaluate(y.view(), lpy, gy);
    if (!o_.mala) {
      s.p.x = std::move(y);
      s.logp = std::move(lpy);
      s.grad = std::move(gy);
      for (int64_t i = 0; i < n; ++i) ref_[i] = log_ref(s.p.x.row(i), d);
      return 0;
    }
    int64_t accepted = 0;
    std::vector<double> xi(d), yi(d), gpy(d);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t a = 0; a < d; ++a) {
        xi[a] = s.p.x.row(i)[a];
        yi[a] = y.row(i)[a];
      }
      path_grad(s, y.row(i), gy.data() + i * d, gpy);
      const double refy = log_ref(y.row(i), d);
      const double lpx = (1 - lambda_) * ref_[i] + lambda_ * s.logp[i];
      const double lpyy = (1 - lambda_) * refy + lambda_ * lpy[i];
      const double la = mala_log_acceptance(xi, lpx, {gp.data() + i * d, size_t(d)}, yi, lpyy, gpy, dt);
      if (std::log(s.rng.uniform()) < la) {
        std::copy(y.row(i), y.row(i) + d, s.p.x.row(i));
        s.logp[i] = lpy[i];
        std::copy(gy.begin() + i * d, gy.begin() + i * d + d, s.grad.begin() + i * d);
        ref_[i] = refy;
        ++accepted;
      }
    }
    return accepted;
  }

  TemperedSmcOptions o_;
  double lambda_ = 0;
  std::vector<double> ref_;
};

}  // namespace

std::vector<double> smc_wfr_log_weights(const Target& target, PointsView m, PointsView x_new,
                                        std::span<const double> log_w_prev, double gamma, const Context& ctx) {
  check_step(gamma);
  require(m.d == target.dim() && x_new.d == target.dim(), "points", "dimension " + std::to_string(x_new.d),
          "the target's dimension " + std::to_string(target.dim()));
  require(log_w_prev.empty() || static_cast<int64_t>(log_w_prev.size()) == m.n, "log_w_prev", log_w_prev.size(),
          "empty or one value per centre");
  require(m.n == x_new.n, "x_new", x_new.n, "as many points as centres (" + std::to_string(m.n) + ")");
  std::vector<double> lp(x_new.n), out(x_new.n);
  target.log_density(x_new, lp, {});
  smc_wfr_weights_impl(m, x_new, log_w_prev, lp, gamma, ctx, out);
  return out;
}

std::unique_ptr<Sampler> make_smc_wfr(SmcWfrOptions o) { return std::make_unique<SmcWfr>(o); }
std::unique_ptr<Sampler> make_tempered_smc(TemperedSmcOptions o) { return std::make_unique<TemperedSmc>(o); }

}  // namespace otgen::wfr
