// Internal to otgen_wfr: the per-run state every sampler steps (Sampler::State) and helpers the
// sampler files share. One file per family of samplers: langevin.cpp (ULA, MALA), birth_death.cpp
// (birth-death, weighted WFR), smc.cpp (SMC-WFR, tempered SMC), weighted_sde.cpp; samplers.cpp
// holds the options' checks, the run loop and make_sampler.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "otgen/core/error.h"
#include "otgen/wfr/wfr.h"

namespace otgen::wfr {

namespace detail {
// log sum_i exp(v_i) in double (-inf for an empty or all -inf v).
double lse(std::span<const double> v);
// A step size: positive and finite, else Error naming "step".
void check_step(double dt);
}  // namespace detail

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

}  // namespace otgen::wfr
