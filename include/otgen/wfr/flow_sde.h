// Weighted SDEs on a linear-path flow model (SPEC.md §3 and §4): the SDE twin of the flow's ODE, and
// Feynman-Kac weights that turn it into a sampler of a *different* target built from the model —
// tilted by a log-reward, tempered, or a classifier-free-guidance product — without retraining.
// Torch-free (wfr layer): the model enters through a FlowFieldFn, so the same sampler runs on a trained
// FlowModel (otgen/flow/flow.h) and on exact fields (gaussian_mixture_field below) for tests.
//
// The model's path: x_t = (1 - t) x0 + t x1, x0 ~ N(0, I), marginals p_t, velocity v(t, x). Its score
// is s = grad log p_t = (t v - x) / (1 - t). For any noise sigma(t) the SDE
//     dX = b dt + sigma dW,   b = v + (sigma^2 / 2) s
// has the same marginals p_t (Fokker-Planck), sigma = 0 being the ODE. Here sigma(t)^2 = S^2 (1 - t)
// (schedule sqrt) or S^2 (1 - t)^2 (schedule linear), so sigma^2 s stays bounded as t -> 1.
//
// Target path q_t ∝ p_t^gamma exp(beta(t) r(x)) (beta(t) = t; gamma = temperature), or for guidance
// q_t ∝ p_t(x | y)^w p_t(x)^(1 - w). SPEC.md §4's rate for dX = b dt + sigma dW tracking q_t,
//     d log w = [ d/dt log q + div b + b . grad log q - (sigma^2/2)(Lap log q + |grad log q|^2) ] dt,
// with the unknown d/dt log p_t eliminated by p_t's own Fokker-Planck identity
//     d/dt log p = -div b - b . s + (sigma^2/2)(Lap log p + |s|^2)          (b as above)
// gives (docs/flow.md, "Weighted SDEs", has the algebra; tests/fk_sde_test.cpp checks each case
// against closed forms):
//   temperature  (1 - gamma) div b + (sigma^2/2) gamma (1 - gamma) |s|^2,
//                div b = div v + (sigma^2/2) (t div v - d) / (1 - t);
//   tilt         beta' r + beta b . grad r - (sigma^2/2)(beta Lap r + 2 gamma beta s . grad r + beta^2 |grad r|^2);
//   tilt drift   (reward-guided proposals: b += kappa sigma^2 beta grad r) adds
//                kappa sigma^2 beta (Lap r + grad r . (gamma s + beta grad r));
//   guidance     -w (1 - w) t / (1 - t) |v_y - v_null|^2 (sigma-free; b, s those of the guided
//                velocity v_null + w (v_y - v_null); combined with tilt, not with temperature).
// Time steps are Euler-Maruyama on a uniform grid, rates evaluated at the left end of each step (so
// never at t = 1). Tempered runs start from q_0 = N(0, I / gamma) exactly.
//
// log Z estimates log of the integral of q~_1 = p_1^gamma exp(r) (p_1 normalised; for guidance
// p_1(x|y)^w p_1(x)^(1-w)): the sum over steps of log sum_i W_i exp(delta_i) (W the normalised weights
// before the step's increments delta), plus log of the integral of p_0^gamma.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "otgen/core/context.h"
#include "otgen/core/points.h"
#include "otgen/core/termination.h"
#include "otgen/wfr/wfr.h"

namespace otgen {

// What the sampler asks of the field at (t, x).
struct FlowFieldRequest {
  bool divergence = false;  // fill div (div_x v per row): temperature != 1 needs it
  bool guidance = false;    // fill v_cond and v_null (the two velocities of classifier-free guidance)
};
// The field's answer; the sampler sizes nothing: the field resizes what it fills.
struct FlowFieldValues {
  std::vector<float> v;                // n * d: the velocity (without guidance parts requested)
  std::vector<float> v_cond, v_null;   // guidance: the conditional and the null-class velocities
  std::vector<double> div;             // divergence: n values
};
// Fills `out` for the batch x at time t in [0, 1); returns the network evaluations it spent.
using FlowFieldFn = std::function<int64_t(double t, PointsView x, const FlowFieldRequest& req, FlowFieldValues& out)>;

// A log-reward r(x) with its gradient and Laplacian, for a batch: r (n), grad (n * d), lap (n).
using LogRewardFn = std::function<void(PointsView x, std::span<double> r, std::span<double> grad, std::span<double> lap)>;

// Built-in rewards, parsed from the CLI's --tilt:
//   linear:a1,...,ad        r(x) = a . x
//   quadratic:k[,m1,...,md] r(x) = -(k / 2) |x - m|^2   (m = 0 when omitted)
// Throws otgen::Error naming `argument`, the value and the expected form.
LogRewardFn parse_log_reward(std::string_view spec, int64_t dim, std::string_view argument = "--tilt");

enum class NoiseSchedule { Sqrt, Linear };
NoiseSchedule parse_noise_schedule(std::string_view s, std::string_view argument = "--noise-schedule");
const char* noise_schedule_name(NoiseSchedule s);

struct FlowSdeOptions {
  int64_t steps = 100;            // Euler-Maruyama steps on [0, 1] (>= 1)
  double noise = 1.0;             // S of sigma(t) (>= 0; 0 = the ODE, weights then follow it exactly)
  NoiseSchedule schedule = NoiseSchedule::Sqrt;
  double temperature = 1.0;       // gamma > 0: q ∝ p^gamma (1 = none)
  double guidance = 1.0;          // w != 1: the product target p(x|y)^w p(x)^(1-w) (needs a field
                                  // that answers FlowFieldRequest::guidance: a conditional model)
  double tilt_drift = 0.0;        // kappa in [0, 1]: add kappa sigma^2 beta grad r to the drift
  bool weighted = true;           // false: the same SDE, weights ignored (the unweighted baseline)
  double ess_threshold = 0.5;     // resample when ESS < threshold * n (0 = never, 1 = every step)
  wfr::ResampleScheme resample = wfr::ResampleScheme::Systematic;
  bool final_resample = true;     // return equally weighted particles (resampled once at t = 1)
  int64_t trace_every = 1;        // keep every k-th step in the trace (>= 1; the last step always)
  void validate() const;          // names fields as CLI options (--sde-steps, --noise, ...)
};

struct FlowSdeStep {
  int64_t step = 0;       // 1-based
  double t = 0;           // time at the end of the step
  double ess = 0;         // ESS / n after the step's reweighting, before its resampling
  bool resampled = false;
  double log_z = 0;       // running log Z estimate
  int64_t nfe = 0;        // cumulative network evaluations
};

struct FlowSdeResult {
  wfr::WeightedParticles particles;  // at t = 1: positions and log-weights (uniform after a final resample)
  double log_z = 0;
  double final_ess = 0;          // ESS / n at t = 1 before the final resampling
  int64_t nfe = 0;
  int64_t resamples = 0;
  std::vector<FlowSdeStep> trace;
  Termination termination = Termination::Converged;  // or NumericalFailure (non-finite state/weights)
  std::string message;
};

// Runs the weighted SDE from n points x0 ~ N(0, I / temperature) (N(0, I) unweighted) drawn from `seed` (stream 0; steps use
// the Sde* streams of otgen/core/streams.h, keyed by (seed, step)). reward: empty for no tilt. Results depend on the seed
// only.
FlowSdeResult sample_flow_sde(const FlowFieldFn& field, int64_t n, int64_t dim, const LogRewardFn& reward,
                              const FlowSdeOptions& opt, uint64_t seed, const Context& ctx = {});

// The exact velocity (and divergence) of linear-path flow matching onto the isotropic Gaussian
// mixture sum_k w_k N(mu_k, s_k^2 I): p_t = sum_k w_k N(t mu_k, ((1 - t)^2 + t^2 s_k^2) I), and
//   v(t, x) = sum_k pi_k(t, x) [mu_k + a_k (x - t mu_k)],  a_k = (t s_k^2 - (1 - t)) / ((1 - t)^2 + t^2 s_k^2),
// pi_k the posterior of component k. means: K * dim values; weights: K non-negative values (normalised
// here); stds: the K s_k. With `cond_weights` (K values) the field is conditional: it answers
// FlowFieldRequest::guidance with v_cond from the mixture with cond_weights and v_null from `weights`,
// and otherwise gives the conditional velocity. One evaluation counts as one network evaluation.
FlowFieldFn gaussian_mixture_field(std::vector<double> means, std::vector<double> weights, std::vector<double> stds,
                                   int64_t dim, std::vector<double> cond_weights = {});

}  // namespace otgen
