// The WFR samplers (SPEC.md §4) behind one Sampler interface.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>
#include <sstream>
#include <string>

#include "otgen/error.h"
#include "otgen/progress.h"
#include "otgen/scores.h"
#include "otgen/wfr.h"

namespace otgen::wfr {

void RunOptions::validate() const { require(steps > 0, "steps", steps, "a positive number of steps"); }

namespace {

void check_step(double dt) { require(dt > 0 && std::isfinite(dt), "step", dt, "a positive finite step size"); }
void check_threshold(double v, std::string_view name) {
  require(v > 0 && v <= 1 && std::isfinite(v), name, v, "a number in (0, 1]");
}

double lse(std::span<const double> v) {
  double mx = -std::numeric_limits<double>::infinity();
  for (double a : v) mx = std::max(mx, a);
  if (!std::isfinite(mx)) return mx;
  double s = 0;
  for (double a : v) s += std::exp(a - mx);
  return mx + std::log(s);
}

}  // namespace

void UlaOptions::validate() const { check_step(step); }
void MalaOptions::validate() const { check_step(step); }
void KdeOptions::validate() const {
  if (bandwidth) require(*bandwidth > 0 && std::isfinite(*bandwidth), "bandwidth", *bandwidth, "a positive finite number");
}
void BirthDeathOptions::validate() const {
  check_step(step);
  require(beta >= 0 && std::isfinite(beta), "beta", beta, "a non-negative finite number");
  kde.validate();
}
void WeightedWfrOptions::validate() const {
  check_step(step);
  require(beta >= 0 && std::isfinite(beta), "beta", beta, "a non-negative finite number");
  kde.validate();
  check_threshold(ess_threshold, "ess_threshold");
}
void SmcWfrOptions::validate() const {
  check_step(step);
  check_threshold(ess_threshold, "ess_threshold");
}
void TemperedSmcOptions::validate() const {
  check_step(step);
  require(target_ess > 0 && target_ess < 1, "target_ess", target_ess, "a number in (0, 1)");
  check_threshold(ess_threshold, "ess_threshold");
  require(moves >= 1, "moves", moves, "at least 1 MCMC move per step");
  require(std::isfinite(reference_mean), "reference_mean", reference_mean, "a finite number");
  require(reference_std > 0 && std::isfinite(reference_std), "reference_std", reference_std, "a positive finite number");
}
void WeightedSdeOptions::validate() const {
  check_step(step);
  require(static_cast<bool>(path), "path", "empty", "a path callback (log p_t and its derivatives)");
  check_threshold(ess_threshold, "ess_threshold");
}

double mala_log_acceptance(std::span<const double> x, double logp_x, std::span<const double> grad_x,
                           std::span<const double> y, double logp_y, std::span<const double> grad_y, double dt) {
  double fwd = 0, bwd = 0;  // |y - x - dt g(x)|^2, |x - y - dt g(y)|^2
  for (size_t a = 0; a < x.size(); ++a) {
    const double f = y[a] - x[a] - dt * grad_x[a];
    const double b = x[a] - y[a] - dt * grad_y[a];
    fwd += f * f;
    bwd += b * b;
  }
  const double la = logp_y - logp_x - bwd / (4 * dt) + fwd / (4 * dt);
  return std::min(0.0, la);
}

double kde_bandwidth(PointsView x, std::span<const double> weights, BandwidthRule rule) {
  const int64_t n = x.n, d = x.d;
  require(n >= 2, "particles", n, "at least 2 particles");
  // weighted per-coordinate standard deviation, averaged over coordinates; n_eff = ESS
  double sw = 0, sw2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double w = weights.empty() ? 1.0 / n : weights[i];
    sw += w;
    sw2 += w * w;
  }
  double sigma = 0;
  for (int64_t a = 0; a < d; ++a) {
    double m = 0;
    for (int64_t i = 0; i < n; ++i) m += (weights.empty() ? 1.0 / n : weights[i]) * x.row(i)[a];
    m /= sw;
    double v = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double e = x.row(i)[a] - m;
      v += (weights.empty() ? 1.0 / n : weights[i]) * e * e;
    }
    sigma += std::sqrt(v / sw);
  }
  sigma /= d;
  const double neff = sw * sw / sw2;
  const double factor = rule == BandwidthRule::Silverman ? std::pow(4.0 / (d + 2.0), 1.0 / (d + 4.0)) : 1.0;
  const double h = factor * std::pow(neff, -1.0 / (d + 4.0)) * sigma;
  return h > 0 ? h : 1e-3;  // all particles equal: a tiny bandwidth rather than 0
}

std::vector<double> kde_log_density(PointsView x, std::span<const double> log_w, double h, const Context& ctx) {
  require(h > 0 && std::isfinite(h), "bandwidth", h, "a positive finite number");
  require(log_w.empty() || static_cast<int64_t>(log_w.size()) == x.n, "log_w", log_w.size(),
          "empty or one log-weight per particle");
  const int64_t n = x.n;
  std::vector<float> lw;
  double shift = -std::log(static_cast<double>(n));  // uniform weights 1/n
  if (!log_w.empty()) {
    shift = -lse(log_w);
    lw.resize(n);
    for (int64_t i = 0; i < n; ++i) lw[i] = static_cast<float>(log_w[i] + shift);
    shift = 0;
  }
  std::vector<float> out(n);
  kernel_row_logsumexp(x, x, 1.0 / (2 * h * h), lw, out, ctx);
  const double c = -0.5 * x.d * std::log(2 * std::numbers::pi * h * h) + shift;
  std::vector<double> r(n);
  for (int64_t i = 0; i < n; ++i) r[i] = out[i] + c;
  return r;
}

// ------------------------------------------------------------------------------------------ state

struct Sampler::State {
  const Target* target = nullptr;
  const Context* ctx = nullptr;
  WeightedParticles p;
  int64_t n = 0, d = 0;
  int64_t k = 0;             // current step, 1-based
  int64_t total_steps = 0;
  double t = 0;
  std::vector<double> logp, grad;  // target at the current positions (kept valid by the samplers)
  int64_t grad_evals = 0;
  int64_t resamplings = 0;
  std::optional<double> log_z;
  StepRecord rec;
  Rng rng;

  // Evaluates the target at x into logp/grad (grad may be empty), checking every value.
  void evaluate(PointsView x, std::span<double> lp, std::span<double> g) {
    target->log_density(x, lp, g);
    if (!g.empty()) grad_evals += x.n;
    for (int64_t i = 0; i < x.n; ++i) {
      bool ok = std::isfinite(lp[i]);
      for (int64_t a = 0; ok && !g.empty() && a < d; ++a) ok = std::isfinite(g[i * d + a]);
      if (!ok) {
        std::ostringstream os;
        os << "the target '" << target->name() << "' returned a non-finite log density or gradient at step " << k
           << " for particle " << i << " (x = " << x.row(i)[0] << (d > 1 ? ", ..." : "") << ")";
        throw Error(os.str());
      }
    }
  }
  void evaluate_current() { evaluate(p.x.view(), logp, grad); }

  void resample(ResampleScheme scheme) {
    const auto w = p.weights();
    const auto idx = resample_indices(w, n, scheme, rng);
    Points nx(n, d);
    std::vector<double> nl(n), ng(n * d);
    for (int64_t j = 0; j < n; ++j) {
      std::copy(p.x.row(idx[j]), p.x.row(idx[j]) + d, nx.row(j));
      nl[j] = logp[idx[j]];
      std::copy(grad.begin() + idx[j] * d, grad.begin() + idx[j] * d + d, ng.begin() + j * d);
    }
    p.x = std::move(nx);
    logp = std::move(nl);
    grad = std::move(ng);
    std::fill(p.logw.begin(), p.logw.end(), -std::log(static_cast<double>(n)));
    ++resamplings;
    rec.resampled = true;
  }

  // x <- x + dt g + sqrt(2 dt) xi (noise from this step's stream, particle order).
  void langevin_move(Points& x, std::span<const double> g, double dt) {
    const double s = std::sqrt(2 * dt);
    for (int64_t i = 0; i < x.n; ++i)
      for (int64_t a = 0; a < d; ++a) {
        float& v = x.row(i)[a];
        v = static_cast<float>(static_cast<double>(v) + dt * g[i * d + a] + s * rng.normal());
      }
  }

  // log rho_hat(x_i) for the (weighted) particles themselves (log-weights kept normalised).
  std::vector<double> kde_log_density(double h, bool weighted) {
    return wfr::kde_log_density(p.x.view(), weighted ? std::span<const double>(p.logw) : std::span<const double>(),
                                h, *ctx);
  }
};

RunResult Sampler::run(const Target& target, WeightedParticles start, const RunOptions& run, const Context& ctx) {
  ctx.validate();
  run.validate();
  require(start.size() >= 2, "particles", start.size(), "at least 2 particles");
  require(start.dim() == target.dim(), "particles", "dimension " + std::to_string(start.dim()),
          "the target's dimension " + std::to_string(target.dim()));
  require_finite(start.x.view(), "initial particles");
  if (start.logw.empty()) start.logw.assign(start.size(), 0.0);
  require(static_cast<int64_t>(start.logw.size()) == start.size(), "logw", start.logw.size(),
          "one log-weight per particle");
  for (double v : start.logw) require(!std::isnan(v) && v != std::numeric_limits<double>::infinity(), "logw", v,
                                      "finite log-weights or -infinity");
  State s;
  s.target = &target;
  s.ctx = &ctx;
  s.p = std::move(start);
  s.p.normalise();
  s.n = s.p.size();
  s.d = s.p.dim();
  s.total_steps = run.steps;
  s.logp.assign(s.n, 0.0);
  s.grad.assign(s.n * s.d, 0.0);
  s.rng = Rng(ctx.seed, 0);
  begin(s);

  RunResult r;
  Context pctx = ctx;
  if (!run.progress_bar) pctx.quiet = true;
  Progress bar("wfr " + name(), run.steps, pctx);
  const auto t0 = std::chrono::steady_clock::now();
  r.termination = Termination::MaxSteps;
  for (int64_t k = 1; k <= run.steps; ++k) {
    s.k = k;
    s.rng = Rng(ctx.seed, static_cast<uint64_t>(k));
    s.rec = StepRecord{};
    const bool more = step(s);
    s.t += step_size();
    s.rec.step = k;
    s.rec.time = s.t;
    if (s.rec.ess == 0) s.rec.ess = s.p.ess();
    s.rec.grad_evals = s.grad_evals;
    s.rec.log_z = s.log_z;
    s.rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.trace.push_back(s.rec);
    r.steps = k;
    if (bar.enabled()) {
      bar.set_metric("ess", s.rec.ess);
      if (s.rec.lambda) bar.set_metric("lambda", *s.rec.lambda);
      bar.update(k);
    }
    if (!more) {
      r.termination = Termination::Converged;
      break;
    }
  }
  bar.finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.p.normalise();
  r.particles = std::move(s.p);
  r.resamplings = s.resamplings;
  r.grad_evals = s.grad_evals;
  r.log_z = s.log_z;
  r.message = r.termination == Termination::Converged ? "reached the end of the path"
                                                      : "ran the requested " + std::to_string(r.steps) + " steps";
  return r;
}

namespace {

// ------------------------------------------------------------------------------------------ ULA

class Ula final : public Sampler {
 public:
  explicit Ula(UlaOptions o) : o_(o) { o_.validate(); }
  std::string name() const override { return "ula"; }
  bool weighted() const override { return false; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.evaluate_current(); }
  bool step(State& s) override {
    s.langevin_move(s.p.x, s.grad, o_.step);
    s.evaluate_current();
    return true;
  }

 private:
  UlaOptions o_;
};

// ------------------------------------------------------------------------------------------ MALA

class Mala final : public Sampler {
 public:
  explicit Mala(MalaOptions o) : o_(o) { o_.validate(); }
  std::string name() const override { return "mala"; }
  bool weighted() const override { return false; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.evaluate_current(); }
  bool step(State& s) override {
    Points y = s.p.x;
    s.langevin_move(y, s.grad, o_.step);
    std::vector<double> lpy(s.n), gy(s.n * s.d);
    s.evaluate(y.view(), lpy, gy);
    int64_t accepted = 0;
    std::vector<double> xi(s.d), yi(s.d);
    for (int64_t i = 0; i < s.n; ++i) {
      for (int64_t a = 0; a < s.d; ++a) {
        xi[a] = s.p.x.row(i)[a];
        yi[a] = y.row(i)[a];
      }
      const double la = mala_log_acceptance(xi, s.logp[i], {s.grad.data() + i * s.d, size_t(s.d)}, yi, lpy[i],
                                            {gy.data() + i * s.d, size_t(s.d)}, o_.step);
      if (std::log(s.rng.uniform()) < la) {
        std::copy(y.row(i), y.row(i) + s.d, s.p.x.row(i));
        s.logp[i] = lpy[i];
        std::copy(gy.begin() + i * s.d, gy.begin() + i * s.d + s.d, s.grad.begin() + i * s.d);
        ++accepted;
      }
    }
    s.rec.acceptance = static_cast<double>(accepted) / s.n;
    return true;
  }

 private:
  MalaOptions o_;
};

// ------------------------------------------------------------------------------------ birth-death

class BirthDeath final : public Sampler {
 public:
  explicit BirthDeath(BirthDeathOptions o) : o_(o) { o_.validate(); }
  std::string name() const override { return "birth-death"; }
  bool weighted() const override { return false; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.evaluate_current(); }
  bool step(State& s) override {
    const int64_t n = s.n, d = s.d;
    s.langevin_move(s.p.x, s.grad, o_.step);
    s.evaluate_current();
    const double h = o_.kde.bandwidth ? *o_.kde.bandwidth : kde_bandwidth(s.p.x.view(), {}, o_.kde.rule);
    const auto lrho = s.kde_log_density(h, false);
    std::vector<double> r(n);
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += (r[i] = lrho[i] - s.logp[i]);
    mean /= n;
    const Points x0 = s.p.x;
    const std::vector<double> lp0 = s.logp, g0 = s.grad;
    std::vector<char> touched(n, 0);
    int64_t jumps = 0;
    auto copy = [&](int64_t dst, int64_t src) {
      std::copy(x0.row(src), x0.row(src) + d, s.p.x.row(dst));
      s.logp[dst] = lp0[src];
      std::copy(g0.begin() + src * d, g0.begin() + src * d + d, s.grad.begin() + dst * d);
    };
    for (int64_t i = 0; i < n; ++i) {
      const double ri = r[i] - mean;
      const double u = s.rng.uniform();
      const int64_t jdraw = s.rng.below(n - 1);
      if (touched[i]) continue;
      if (u >= -std::expm1(-std::abs(ri) * o_.beta * o_.step)) continue;
      // a uniformly chosen other particle not yet involved in a jump this step
      int64_t j = jdraw >= i ? jdraw + 1 : jdraw;
      for (int tries = 0; touched[j] && tries < 64; ++tries) {
        j = s.rng.below(n - 1);
        if (j >= i) ++j;
      }
      if (touched[j]) continue;
      if (ri > 0) copy(i, j);  // kill i: it becomes a copy of j
      else copy(j, i);         // duplicate i over j
      touched[i] = touched[j] = 1;
      ++jumps;
    }
    s.rec.bandwidth = h;
    s.rec.jumps = jumps;
    return true;
  }

 private:
  BirthDeathOptions o_;
};

// ------------------------------------------------------------------------------------ weighted WFR

class WeightedWfr final : public Sampler {
 public:
  explicit WeightedWfr(WeightedWfrOptions o) : o_(std::move(o)) { o_.validate(); }
  std::string name() const override { return "wfr"; }
  bool weighted() const override { return true; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.evaluate_current(); }
  bool step(State& s) override {
    s.langevin_move(s.p.x, s.grad, o_.step);
    s.evaluate_current();
    const auto w = s.p.weights();
    const double h = o_.kde.bandwidth ? *o_.kde.bandwidth : kde_bandwidth(s.p.x.view(), w, o_.kde.rule);
    const auto lrho = s.kde_log_density(h, true);
    const double beta = o_.beta_schedule ? o_.beta_schedule(s.t) : o_.beta;
    require(beta >= 0 && std::isfinite(beta), "beta_schedule", beta, "non-negative finite values");
    for (int64_t i = 0; i < s.n; ++i) s.p.logw[i] -= beta * o_.step * (lrho[i] - s.logp[i]);
    s.p.normalise();
    s.rec.ess = s.p.ess();
    s.rec.bandwidth = h;
    if (s.rec.ess < o_.ess_threshold * s.n) s.resample(o_.resample);
    return true;
  }

 private:
  WeightedWfrOptions o_;
};

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

// ------------------------------------------------------------------------------ general weighted SDE

class WeightedSde final : public Sampler {
 public:
  explicit WeightedSde(WeightedSdeOptions o) : o_(std::move(o)) { o_.validate(); }
  std::string name() const override { return "weighted-sde"; }
  bool weighted() const override { return true; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.log_z = 0.0; }
  bool step(State& s) override {
    const int64_t n = s.n, d = s.d;
    const double dt = o_.step, t = s.t;
    const double sigma = o_.sigma ? o_.sigma(t) : std::sqrt(2.0);
    require(sigma >= 0 && std::isfinite(sigma), "sigma", sigma, "a non-negative finite diffusion");
    std::vector<double> lp(n), dlp(n), g(n * d), lap(n), b(n * d), divb(n);
    o_.path(t, s.p.x.view(), PathPoint{lp, dlp, g, lap});
    s.grad_evals += n;
    for (int64_t i = 0; i < n; ++i) {
      bool ok = std::isfinite(lp[i]) && std::isfinite(dlp[i]) && std::isfinite(lap[i]);
      for (int64_t a = 0; ok && a < d; ++a) ok = std::isfinite(g[i * d + a]);
      if (!ok)
        throw Error("the path callback returned a non-finite value at step " + std::to_string(s.k) +
                    " for particle " + std::to_string(i));
    }
    if (o_.drift) {
      o_.drift(t, s.p.x.view(), g, DriftPoint{b, divb});
      for (int64_t i = 0; i < n; ++i) {
        bool ok = std::isfinite(divb[i]);
        for (int64_t a = 0; ok && a < d; ++a) ok = std::isfinite(b[i * d + a]);
        if (!ok)
          throw Error("the drift callback returned a non-finite value at step " + std::to_string(s.k) +
                      " for particle " + std::to_string(i));
      }
    } else {
      const double c = 0.5 * sigma * sigma;
      for (int64_t i = 0; i < n * d; ++i) b[i] = c * g[i];
      for (int64_t i = 0; i < n; ++i) divb[i] = c * lap[i];
    }
    std::vector<double> inc(n);
    for (int64_t i = 0; i < n; ++i) {
      double bg = 0, gg = 0;
      for (int64_t a = 0; a < d; ++a) {
        bg += b[i * d + a] * g[i * d + a];
        gg += g[i * d + a] * g[i * d + a];
      }
      const double rate = o_.drift ? dlp[i] + divb[i] + bg - 0.5 * sigma * sigma * (lap[i] + gg)
                                   : dlp[i];  // Langevin on p_t: the other terms cancel exactly
      inc[i] = s.p.logw[i] + rate * dt;
    }
    *s.log_z += lse(inc);
    s.p.logw = std::move(inc);
    s.p.normalise();
    s.rec.ess = s.p.ess();
    if (s.rec.ess < o_.ess_threshold * n) {
      // resample positions together with this step's drift rows
      const auto w = s.p.weights();
      const auto idx = resample_indices(w, n, o_.resample, s.rng);
      Points nx(n, d);
      std::vector<double> nb(n * d);
      for (int64_t j = 0; j < n; ++j) {
        std::copy(s.p.x.row(idx[j]), s.p.x.row(idx[j]) + d, nx.row(j));
        std::copy(b.begin() + idx[j] * d, b.begin() + idx[j] * d + d, nb.begin() + j * d);
      }
      s.p.x = std::move(nx);
      b = std::move(nb);
      std::fill(s.p.logw.begin(), s.p.logw.end(), -std::log(static_cast<double>(n)));
      ++s.resamplings;
      s.rec.resampled = true;
    }
    const double sq = sigma * std::sqrt(dt);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t a = 0; a < d; ++a) {
        float& v = s.p.x.row(i)[a];
        v = static_cast<float>(static_cast<double>(v) + dt * b[i * d + a] + sq * s.rng.normal());
      }
    return true;
  }

 private:
  WeightedSdeOptions o_;
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

std::unique_ptr<Sampler> make_ula(UlaOptions o) { return std::make_unique<Ula>(o); }
std::unique_ptr<Sampler> make_mala(MalaOptions o) { return std::make_unique<Mala>(o); }
std::unique_ptr<Sampler> make_birth_death(BirthDeathOptions o) { return std::make_unique<BirthDeath>(o); }
std::unique_ptr<Sampler> make_weighted_wfr(WeightedWfrOptions o) { return std::make_unique<WeightedWfr>(std::move(o)); }
std::unique_ptr<Sampler> make_smc_wfr(SmcWfrOptions o) { return std::make_unique<SmcWfr>(o); }
std::unique_ptr<Sampler> make_tempered_smc(TemperedSmcOptions o) { return std::make_unique<TemperedSmc>(o); }
std::unique_ptr<Sampler> make_weighted_sde(WeightedSdeOptions o) { return std::make_unique<WeightedSde>(std::move(o)); }

std::unique_ptr<Sampler> make_sampler(std::string_view name, const SamplerSpec& spec) {
  KdeOptions kde{spec.bandwidth, spec.rule};
  if (name == "ula") return make_ula({spec.step});
  if (name == "mala") return make_mala({spec.step});
  if (name == "birth-death") return make_birth_death({spec.step, spec.beta, kde});
  if (name == "wfr") {
    WeightedWfrOptions o;
    o.step = spec.step;
    o.beta = spec.beta;
    o.kde = kde;
    o.ess_threshold = spec.ess_threshold;
    o.resample = spec.resample;
    return make_weighted_wfr(std::move(o));
  }
  if (name == "smc-wfr") {
    SmcWfrOptions o;
    o.step = spec.step;
    o.resample = spec.resample;
    return make_smc_wfr(o);
  }
  if (name == "tempered-smc") {
    TemperedSmcOptions o;
    o.step = spec.step;
    o.adaptive = spec.adaptive;
    o.mala = spec.mala_moves;
    o.moves = spec.moves;
    o.ess_threshold = spec.ess_threshold;
    o.resample = spec.resample;
    return make_tempered_smc(o);
  }
  fail_argument("sampler", name, "one of ula, mala, birth-death, wfr, smc-wfr, tempered-smc");
}

}  // namespace otgen::wfr
