// Weighted SDE twin of a linear-path flow model (otgen/wfr/flow_sde.h has the maths).
#include "otgen/wfr/flow_sde.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "otgen/core/error.h"
#include "otgen/core/rng.h"
#include "otgen/core/streams.h"

namespace otgen {

namespace {

double log_sum_exp(std::span<const double> v) {
  double m = -INFINITY;
  for (double x : v) m = std::max(m, x);
  if (!std::isfinite(m)) return m;
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

std::vector<double> parse_numbers(std::string_view s, std::string_view argument, std::string_view spec,
                                  const std::string& expected) {
  std::vector<double> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    const std::string item(s.substr(pos, comma - pos));
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || !std::isfinite(v))
      fail_argument(argument, "'" + std::string(spec) + "'", expected);
    out.push_back(v);
    pos = comma + 1;
  }
  return out;
}

}  // namespace

LogRewardFn parse_log_reward(std::string_view spec, int64_t dim, std::string_view argument) {
  const std::string d = std::to_string(dim);
  const std::string expected = "linear:a1,...,a" + d + " or quadratic:k[,m1,...,m" + d + "] (finite numbers)";
  const size_t colon = spec.find(':');
  if (colon == std::string_view::npos) fail_argument(argument, "'" + std::string(spec) + "'", expected);
  const std::string_view kind = spec.substr(0, colon);
  const std::vector<double> v = parse_numbers(spec.substr(colon + 1), argument, spec, expected);
  if (kind == "linear") {
    if (static_cast<int64_t>(v.size()) != dim)
      fail_argument(argument, "'" + std::string(spec) + "' (" + std::to_string(v.size()) + " coefficients)",
                    expected);
    return [a = v](PointsView x, std::span<double> r, std::span<double> grad, std::span<double> lap) {
      for (int64_t i = 0; i < x.n; ++i) {
        double s = 0;
        for (int64_t c = 0; c < x.d; ++c) s += a[c] * x.row(i)[c], grad[i * x.d + c] = a[c];
        r[i] = s;
        lap[i] = 0;
      }
    };
  }
  if (kind == "quadratic") {
    if (v.size() != 1 && static_cast<int64_t>(v.size()) != dim + 1)
      fail_argument(argument, "'" + std::string(spec) + "'", expected);
    const double k = v[0];
    std::vector<double> m(static_cast<size_t>(dim), 0.0);
    if (v.size() > 1) std::copy(v.begin() + 1, v.end(), m.begin());
    return [k, m](PointsView x, std::span<double> r, std::span<double> grad, std::span<double> lap) {
      for (int64_t i = 0; i < x.n; ++i) {
        double s = 0;
        for (int64_t c = 0; c < x.d; ++c) {
          const double e = x.row(i)[c] - m[c];
          s += e * e;
          grad[i * x.d + c] = -k * e;
        }
        r[i] = -0.5 * k * s;
        lap[i] = -k * static_cast<double>(x.d);
      }
    };
  }
  fail_argument(argument, "'" + std::string(spec) + "'", expected);
}

NoiseSchedule parse_noise_schedule(std::string_view s, std::string_view argument) {
  if (s == "sqrt") return NoiseSchedule::Sqrt;
  if (s == "linear") return NoiseSchedule::Linear;
  fail_argument(argument, "'" + std::string(s) + "'", "sqrt (sigma = S sqrt(1 - t)) or linear (sigma = S (1 - t))");
}

const char* noise_schedule_name(NoiseSchedule s) { return s == NoiseSchedule::Sqrt ? "sqrt" : "linear"; }

void FlowSdeOptions::validate() const {
  require(steps >= 1 && steps <= 100000000, "--steps", steps, "an integer in [1, 1e8]");
  require(std::isfinite(noise) && noise >= 0, "--sde-noise", noise, "a finite number >= 0");
  require(std::isfinite(temperature) && temperature > 0 && temperature <= 1e6, "--temperature", temperature,
          "a number in (0, 1e6]");
  require(std::isfinite(guidance), "--guidance", guidance, "a finite number");
  require(temperature == 1.0 || guidance == 1.0, "--temperature", temperature, "1 when --guidance is not 1");
  require(std::isfinite(tilt_drift) && tilt_drift >= 0 && tilt_drift <= 1, "--tilt-drift", tilt_drift,
          "a number in [0, 1]");
  require(std::isfinite(ess_threshold) && ess_threshold >= 0 && ess_threshold <= 1, "--ess-threshold", ess_threshold,
          "a number in [0, 1]");
  require(trace_every >= 1, "--trace-every", trace_every, "an integer >= 1");
}

namespace {

// One run of sample_flow_sde: its settings, the particles and the buffers every step reuses.
class FlowSdeRun {
 public:
  FlowSdeRun(const FlowFieldFn& field, int64_t n, int64_t dim, const LogRewardFn& reward, const FlowSdeOptions& opt,
             uint64_t seed)
      : field_(field), reward_(reward), opt_(opt), seed_(seed), n_(n), d_(dim), nd_(static_cast<size_t>(n * dim)),
        gamma_(opt.temperature), w_(opt.guidance), S2_(opt.noise * opt.noise), guided_(w_ != 1.0),
        tempered_(gamma_ != 1.0), tilted_(static_cast<bool>(reward)), h_(1.0 / static_cast<double>(opt.steps)),
        kappa_(opt.tilt_drift), req_{tempered_ && opt.weighted, guided_}, v_(nd_), r_(tilted_ ? n : 0),
        grad_(tilted_ ? nd_ : 0), lap_(tilted_ ? n : 0), delta_(static_cast<size_t>(n)), xi_(nd_) {}

  FlowSdeResult run();

 private:
  // p_0 and log Z_0.
  void start();

  // Step k from t to t1; false (with the result's termination and message set) on a non-finite state or weights.
  bool step(int64_t k);

  // The field (v: guided if asked) and the reward at (t, x).
  void evaluate(double t);

  // d log w / dt of particle i (otgen/wfr/flow_sde.h has the terms), before it moves.
  double log_weight_rate(int64_t i, double t, double sigma2) const;

  // The Euler-Maruyama step of particle i.
  void advance(int64_t i, double t, double sigma2, double noise_scale);

  // Adds the step's log-weight increments, updates log Z and resamples when the ESS is low (not at the last
  // step k); false on non-finite weights.
  bool reweight(int64_t k, double t1, FlowSdeStep& st);

  bool fail(const std::string& what, double t1, int64_t k) {
    res_.termination = Termination::NumericalFailure;
    res_.message = what + " became non-finite at t = " + to_text(t1) + " (step " + std::to_string(k + 1) + ")";
    return false;
  }

  const FlowFieldFn& field_;
  const LogRewardFn& reward_;
  const FlowSdeOptions& opt_;
  const uint64_t seed_;
  const int64_t n_, d_;
  const size_t nd_;
  const double gamma_, w_, S2_;
  const bool guided_, tempered_, tilted_;
  const double h_, kappa_;
  const FlowFieldRequest req_;
  FlowSdeResult res_;
  FlowFieldValues f_;
  std::vector<float> v_;
  std::vector<double> r_, grad_, lap_, delta_;
  std::vector<float> xi_;
};

FlowSdeResult FlowSdeRun::run() {
  start();
  for (int64_t k = 0; k < opt_.steps; ++k)
    if (!step(k)) return std::move(res_);
  wfr::WeightedParticles& p = res_.particles;
  res_.final_ess = opt_.weighted ? p.ess() / static_cast<double>(n_) : 1.0;
  if (opt_.weighted && opt_.final_resample) {
    Rng rng(stream_key(seed_, Stream::SdeFinalResample));
    p.resample(opt_.resample, rng);
    ++res_.resamples;
  }
  res_.message = "reached t = 1 in " + std::to_string(opt_.steps) + " steps";
  return std::move(res_);
}

void FlowSdeRun::start() {
  wfr::WeightedParticles& p = res_.particles;
  p.x = Points(n_, d_);
  p.logw.assign(static_cast<size_t>(n_), 0.0);
  Rng rng(seed_, 0);
  rng.fill_normal(std::span<float>(p.x.data));
  if (tempered_ && opt_.weighted)  // q_0 = N(0, I / gamma); the unweighted baseline keeps p_0
    for (float& v : p.x.data) v = static_cast<float>(v / std::sqrt(gamma_));
  // log of the integral of p_0^gamma, p_0 = N(0, I).
  res_.log_z = tempered_ && opt_.weighted ? 0.5 * static_cast<double>(d_) *
                                                ((1 - gamma_) * std::log(2 * std::numbers::pi) - std::log(gamma_))
                                          : 0.0;
}

bool FlowSdeRun::step(int64_t k) {
  const double t = static_cast<double>(k) * h_, t1 = k + 1 == opt_.steps ? 1.0 : static_cast<double>(k + 1) * h_;
  evaluate(t);
  const double sigma2 = opt_.schedule == NoiseSchedule::Sqrt ? S2_ * (1 - t) : S2_ * (1 - t) * (1 - t);
  const double noise_scale = std::sqrt(sigma2 * h_);
  Rng(stream_key(seed_, Stream::SdeNoise, static_cast<uint64_t>(k))).fill_normal(std::span<float>(xi_));
  for (int64_t i = 0; i < n_; ++i) {
    delta_[i] = h_ * (opt_.weighted ? log_weight_rate(i, t, sigma2) : 0.0);
    advance(i, t, sigma2, noise_scale);
  }
  FlowSdeStep st;
  st.step = k + 1;
  st.t = t1;
  st.ess = 1.0;
  if (opt_.weighted && !reweight(k, t1, st)) return false;
  wfr::WeightedParticles& p = res_.particles;
  if (!std::all_of(p.x.data.begin(), p.x.data.end(), [](float q) { return std::isfinite(q); }))
    return fail("the state", t1, k);
  st.log_z = res_.log_z;
  st.nfe = res_.nfe;
  if ((k + 1) % opt_.trace_every == 0 || k + 1 == opt_.steps) res_.trace.push_back(st);
  return true;
}

void FlowSdeRun::evaluate(double t) {
  res_.nfe += field_(t, res_.particles.x.view(), req_, f_);
  if (guided_) {
    require(f_.v_cond.size() == nd_ && f_.v_null.size() == nd_, "--guidance", w_,
            "a conditional model and a class (the field gave no conditional velocity)");
    for (size_t j = 0; j < nd_; ++j) v_[j] = static_cast<float>(f_.v_null[j] + w_ * (f_.v_cond[j] - f_.v_null[j]));
  } else {
    require(f_.v.size() == nd_, "field", f_.v.size(), "n * dim velocities");
    std::copy(f_.v.begin(), f_.v.end(), v_.begin());
  }
  if (req_.divergence) require(f_.div.size() == static_cast<size_t>(n_), "field", f_.div.size(), "n divergences");
  if (tilted_) reward_(res_.particles.x.view(), r_, grad_, lap_);
}

double FlowSdeRun::log_weight_rate(int64_t i, double t, double sigma2) const {
  const float* xr = res_.particles.x.row(i);
  const float* vr = v_.data() + i * d_;
  const double beta = t, dbeta = 1.0, gamma = gamma_, kappa = kappa_;
  double rate = 0, s2 = 0, bg = 0, sg = 0, g2 = 0;
  for (int64_t c = 0; c < d_; ++c) {
    const double s = (t * vr[c] - xr[c]) / (1 - t);
    const double b = vr[c] + 0.5 * sigma2 * s;  // b_p: the drift that keeps p_t
    s2 += s * s;
    if (tilted_) {
      const double g = grad_[i * d_ + c];
      bg += b * g, sg += s * g, g2 += g * g;
    }
  }
  if (tempered_) {
    const double divb = f_.div[i] + 0.5 * sigma2 * (t * f_.div[i] - static_cast<double>(d_)) / (1 - t);
    rate += (1 - gamma) * divb + 0.5 * sigma2 * gamma * (1 - gamma) * s2;
  }
  if (tilted_) {
    rate += dbeta * r_[i] + beta * bg - 0.5 * sigma2 * (beta * lap_[i] + 2 * gamma * beta * sg + beta * beta * g2);
    if (kappa > 0) rate += kappa * sigma2 * beta * (lap_[i] + gamma * sg + beta * g2);
  }
  if (guided_) {
    double dv2 = 0;
    for (int64_t c = 0; c < d_; ++c) {
      const double e = static_cast<double>(f_.v_cond[i * d_ + c]) - f_.v_null[i * d_ + c];
      dv2 += e * e;
    }
    rate -= w_ * (1 - w_) * t / (1 - t) * dv2;
  }
  return rate;
}

void FlowSdeRun::advance(int64_t i, double t, double sigma2, double noise_scale) {
  float* xr = res_.particles.x.row(i);
  const float* vr = v_.data() + i * d_;
  const double beta = t;
  for (int64_t c = 0; c < d_; ++c) {
    const double s = (t * vr[c] - xr[c]) / (1 - t);
    double b = vr[c] + 0.5 * sigma2 * s;
    if (kappa_ > 0) b += kappa_ * sigma2 * beta * grad_[i * d_ + c];
    xr[c] = static_cast<float>(xr[c] + h_ * b + noise_scale * xi_[i * d_ + c]);
  }
}

bool FlowSdeRun::reweight(int64_t k, double t1, FlowSdeStep& st) {
  wfr::WeightedParticles& p = res_.particles;
  const double before = log_sum_exp(p.logw);
  for (int64_t i = 0; i < n_; ++i) p.logw[i] += delta_[i];
  const double after = log_sum_exp(p.logw);
  res_.log_z += after - before;
  if (!std::isfinite(after)) return fail("the log-weights", t1, k);
  st.ess = p.ess() / static_cast<double>(n_);
  const bool last = k + 1 == opt_.steps;
  if (!last && (opt_.ess_threshold >= 1.0 || st.ess < opt_.ess_threshold)) {
    Rng rng(stream_key(seed_, Stream::SdeResample, static_cast<uint64_t>(k)));
    p.resample(opt_.resample, rng);
    st.resampled = true;
    ++res_.resamples;
  }
  return true;
}

}  // namespace

FlowSdeResult sample_flow_sde(const FlowFieldFn& field, int64_t n, int64_t dim, const LogRewardFn& reward,
                              const FlowSdeOptions& opt, uint64_t seed, const Context& ctx) {
  (void)ctx;
  opt.validate();
  require(n >= 1, "--n", n, "at least 1 particle");
  require(dim >= 1, "dim", dim, "at least 1");
  require(opt.tilt_drift == 0.0 || static_cast<bool>(reward), "--tilt-drift", opt.tilt_drift, "0 without --tilt");
  return FlowSdeRun(field, n, dim, reward, opt, seed).run();
}

FlowFieldFn gaussian_mixture_field(std::vector<double> means, std::vector<double> weights, std::vector<double> stds,
                                   int64_t dim, std::vector<double> cond_weights) {
  const int64_t K = static_cast<int64_t>(weights.size());
  require(K >= 1 && static_cast<int64_t>(means.size()) == K * dim, "means", means.size(), "K * dim values");
  require(static_cast<int64_t>(stds.size()) == K, "stds", stds.size(), "one per component");
  auto normalise = [&](std::vector<double>& wv, std::string_view name) {
    double s = 0;
    for (double x : wv) {
      require(std::isfinite(x) && x >= 0, name, x, "non-negative weights");
      s += x;
    }
    require(s > 0, name, "all zero", "a positive total");
    for (double& x : wv) x /= s;
  };
  normalise(weights, "weights");
  if (!cond_weights.empty()) {
    require(static_cast<int64_t>(cond_weights.size()) == K, "cond_weights", cond_weights.size(), "one per component");
    normalise(cond_weights, "cond_weights");
  }
  for (double s : stds) require(std::isfinite(s) && s > 0, "stds", s, "positive numbers");
  // Velocity (and divergence) of one mixture at (t, x) for every row.
  auto eval = [means, stds, dim, K](const std::vector<double>& wk, double t, PointsView x, std::vector<float>& v,
                                    std::vector<double>* div) {
    const int64_t d = dim;
    v.assign(static_cast<size_t>(x.n * d), 0.0f);
    if (div) div->assign(static_cast<size_t>(x.n), 0.0);
    std::vector<double> logp(K), a(K), var(K), u(static_cast<size_t>(K * d)), g(static_cast<size_t>(K * d));
    for (int64_t i = 0; i < x.n; ++i) {
      const float* xr = x.row(i);
      double m = -INFINITY;
      for (int64_t k = 0; k < K; ++k) {
        var[k] = (1 - t) * (1 - t) + t * t * stds[k] * stds[k];
        a[k] = (t * stds[k] * stds[k] - (1 - t)) / var[k];
        double q = 0;
        for (int64_t c = 0; c < d; ++c) {
          const double e = xr[c] - t * means[k * d + c];
          q += e * e;
          u[k * d + c] = means[k * d + c] + a[k] * e;
          g[k * d + c] = -e / var[k];
        }
        logp[k] = wk[k] > 0 ? std::log(wk[k]) - 0.5 * d * std::log(2 * std::numbers::pi * var[k]) - 0.5 * q / var[k] : -INFINITY;
        m = std::max(m, logp[k]);
      }
      double z = 0;
      for (int64_t k = 0; k < K; ++k) z += (logp[k] = std::exp(logp[k] - m));
      std::vector<double> gbar(static_cast<size_t>(d), 0.0), vi(static_cast<size_t>(d), 0.0);
      for (int64_t k = 0; k < K; ++k) {
        const double pk = logp[k] / z;
        for (int64_t c = 0; c < d; ++c) gbar[c] += pk * g[k * d + c], vi[c] += pk * u[k * d + c];
      }
      for (int64_t c = 0; c < d; ++c) v[i * d + c] = static_cast<float>(vi[c]);
      if (div) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double pk = logp[k] / z;
          double dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += (g[k * d + c] - gbar[c]) * u[k * d + c];
          s += pk * (static_cast<double>(d) * a[k] + dot);
        }
        (*div)[i] = s;
      }
    }
  };
  return [eval, weights, cond_weights](double t, PointsView x, const FlowFieldRequest& req, FlowFieldValues& out) -> int64_t {
    if (req.guidance) {
      require(!cond_weights.empty(), "--guidance", "given", "a conditional field");
      eval(cond_weights, t, x, out.v_cond, nullptr);
      eval(weights, t, x, out.v_null, nullptr);
      return 2;
    }
    eval(cond_weights.empty() ? weights : cond_weights, t, x, out.v, req.divergence ? &out.div : nullptr);
    return 1;
  };
}

}  // namespace otgen
