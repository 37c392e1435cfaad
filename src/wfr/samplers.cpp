// The WFR samplers (SPEC.md §4) behind one Sampler interface.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "otgen/core/error.h"
#include "otgen/core/progress.h"
#include "otgen/kernels/scores.h"
#include "otgen/wfr/wfr.h"
#include "wfr/sampler_state.h"

namespace otgen::wfr {

void RunOptions::validate() const { require(steps > 0, "steps", steps, "a positive number of steps"); }

namespace {

void check_threshold(double v, std::string_view name) {
  require(v > 0 && v <= 1 && std::isfinite(v), name, v, "a number in (0, 1]");
}

}  // namespace

namespace detail {

void check_step(double dt) { require(dt > 0 && std::isfinite(dt), "step", dt, "a positive finite step size"); }

double lse(std::span<const double> v) {
  double mx = -std::numeric_limits<double>::infinity();
  for (double a : v) mx = std::max(mx, a);
  if (!std::isfinite(mx)) return mx;
  double s = 0;
  for (double a : v) s += std::exp(a - mx);
  return mx + std::log(s);
}

}  // namespace detail

using detail::check_step;
using detail::lse;


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

// ---------------------------------------------------------------------------------------- the run

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


void require_sampler_options(std::string_view name, std::span<const std::string_view> given) {
  static const std::vector<std::string_view> kReaction{"birth-death", "wfr"}, kResampling{"wfr", "smc-wfr", "tempered-smc"},
      kTempered{"tempered-smc"};
  static const std::pair<std::string_view, const std::vector<std::string_view>*> kUses[] = {
      {"beta", &kReaction},         {"bandwidth", &kReaction}, {"bandwidth_rule", &kReaction},
      {"ess_threshold", &kResampling}, {"resample", &kResampling}, {"adaptive", &kTempered},
      {"mala_moves", &kTempered},   {"moves", &kTempered}};
  for (std::string_view field : given)
    for (const auto& [f, users] : kUses) {
      if (f != field || std::find(users->begin(), users->end(), name) != users->end()) continue;
      std::string list;
      for (std::string_view u : *users) list += (list.empty() ? "" : ", ") + std::string(u);
      fail_argument(field, "given", "it only with the " + list + " samplers (" + std::string(name) + " does not use it)");
    }
}

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
    o.ess_threshold = spec.ess_threshold.value_or(o.ess_threshold);
    o.resample = spec.resample;
    return make_weighted_wfr(std::move(o));
  }
  if (name == "smc-wfr") {
    SmcWfrOptions o;
    o.step = spec.step;
    o.resample = spec.resample;
    if (spec.ess_threshold) {  // adaptive resampling instead of every step
      o.resample_every_step = false;
      o.ess_threshold = *spec.ess_threshold;
    }
    return make_smc_wfr(o);
  }
  if (name == "tempered-smc") {
    TemperedSmcOptions o;
    o.step = spec.step;
    o.adaptive = spec.adaptive;
    o.mala = spec.mala_moves;
    o.moves = spec.moves;
    o.ess_threshold = spec.ess_threshold.value_or(o.ess_threshold);
    o.resample = spec.resample;
    return make_tempered_smc(o);
  }
  fail_argument("sampler", name, "one of ula, mala, birth-death, wfr, smc-wfr, tempered-smc");
}

}  // namespace otgen::wfr
