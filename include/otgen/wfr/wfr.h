// Wasserstein-Fisher-Rao particle samplers (SPEC.md §4): targets, weighted particles with resampling,
// and the samplers ULA, MALA, birth-death Langevin, weighted WFR, SMC-WFR, tempered SMC and the
// general weighted SDE, behind one Sampler interface.
//
// Conventions:
//   - A target is pi ∝ exp(log_density) = exp(-V). Particles are row-major float32 (n, d); densities,
//     gradients and log-weights are double.
//   - Log-weights are kept normalised (log-sum-exp 0) after every step; a log normalising-constant
//     estimate log Z = log ∫ exp(log_density) dx (relative to a normalised start) is reported where the
//     weights are importance weights (tempered SMC, general weighted SDE), std::nullopt elsewhere.
//   - Random draws: step k (1-based) of a run uses the stream Rng(ctx.seed, k) (stream 0 is left to the
//     caller for drawing the start), consumed in particle order, so results depend on the seed only (thread count changes nothing:
//     pairwise reductions go through the engine, otgen/kernels/scores.h, whose results are thread-independent).
//   - Pairwise work (KDE log densities, the SMC-WFR proposal mixture) is one engine call per step:
//     kernel_row_logsumexp(x, y, alpha, log_w, out) = LSE_j(log_w_j - alpha |x_i - y_j|^2).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "otgen/core/context.h"
#include "otgen/core/points.h"
#include "otgen/core/rng.h"
#include "otgen/core/termination.h"

namespace otgen::wfr {

// ---------------------------------------------------------------------------------------------------
// Targets

class Target {
 public:
  virtual ~Target() = default;
  virtual int64_t dim() const = 0;
  virtual std::string name() const = 0;
  // logp[i] = log pi(x_i) up to a constant (length x.n); if grad is not empty it receives
  // grad log pi(x_i) at [i*d, i*d + d) (length x.n * d). x.d must equal dim().
  virtual void log_density(PointsView x, std::span<double> logp, std::span<double> grad) const = 0;
  // log of ∫ exp(log_density) dx when known (e.g. normalised mixtures: 0).
  virtual std::optional<double> log_normaliser() const { return std::nullopt; }
  // Exact sampling where available (mixtures, Gaussians): fills out (n, dim()). Default throws.
  virtual bool can_sample() const { return false; }
  virtual Points sample(int64_t n, Rng& rng) const;
};

struct WeightedParticles;

// V(x) = H (x^2 - 1)^2 + tilt * x in 1-D; log_density = -V (unnormalised).
class DoubleWell final : public Target {
 public:
  explicit DoubleWell(double H, double tilt = 0.5);  // H > 0
  int64_t dim() const override { return 1; }
  std::string name() const override;
  void log_density(PointsView x, std::span<double> logp, std::span<double> grad) const override;
  double H() const { return H_; }
  double tilt() const { return tilt_; }
  // The barrier top x* (the local maximum of V between the wells).
  double barrier() const;
  // Exact mass of pi on x < x*, by composite Simpson quadrature on a fine grid.
  double left_well_mass() const;
  // The particles' estimate of it: the normalised weight of the particles with x < barrier() (strictly).
  // p must be 1-D (throws otgen::Error naming the dimension otherwise).
  double mass_left_of_barrier(const WeightedParticles& p) const;  // weighted mass of p on x < barrier()

 private:
  double H_, tilt_;
};

// sum_k w_k N(m_k, S_k) in any dimension with full covariances; log_density is normalised (log Z = 0)
// plus `log_scale` (so log_normaliser() = log_scale: a target with a known non-trivial normaliser).
class GaussianMixture final : public Target {
 public:
  // weights: K positive (normalised here); means: K * d; covariances: K * d * d (symmetric positive
  // definite, checked by Cholesky).
  GaussianMixture(std::vector<double> weights, std::vector<double> means, std::vector<double> covariances,
                  int64_t d, std::string name = "gaussian-mixture", double log_scale = 0.0);
  int64_t dim() const override { return d_; }
  std::string name() const override { return name_; }
  void log_density(PointsView x, std::span<double> logp, std::span<double> grad) const override;
  std::optional<double> log_normaliser() const override { return log_scale_; }
  bool can_sample() const override { return true; }
  Points sample(int64_t n, Rng& rng) const override;
  // n draws from component k (0-based) only.
  Points sample_component(int64_t k, int64_t n, Rng& rng) const;
  int64_t components() const { return K_; }
  const std::vector<double>& weights() const { return w_; }
  std::span<const double> mean(int64_t k) const { return {means_.data() + k * d_, static_cast<size_t>(d_)}; }

 private:
  int64_t K_, d_;
  std::string name_;
  double log_scale_;
  std::vector<double> w_, logw_, means_, chol_, prec_, logdet_;
};

// N(mean, cov) as a one-component mixture.
std::unique_ptr<GaussianMixture> make_gaussian(std::vector<double> mean, std::vector<double> cov);
// Standard normal N(0, I_d).
std::unique_ptr<GaussianMixture> make_standard_normal(int64_t d);

// The named benchmark mixtures of SPEC.md §4:
//   mixture4-lln: means (0,8), (0,2), (-3,5), (3,5); covariances diag(1.2, 0.01) (first two),
//                 diag(0.01, 2) (last two); equal weights.
//   mixture4-cp:  weights (1/3, 1/6, 1/3, 1/6), means (3,3), (9,10), (2,2), (10,4), covariances
//                 0.7 [[1,-.8377],[-.8377,1]], 0.7 [[1,.8377],[.8377,1]], 0.7 [[1,-.8377],[-.8377,1]],
//                 2 [[1,-.6701],[-.6701,1]] (Crucinio-Pathiraja repository, notebook
//                 GaussianMixture/GaussianMixture2D_Sensitivity2K.ipynb, commit 29453df).
//   mixture20d:   d = 20, weights (1/2, 1/3, 1/6), means 3·1, 4·1, m3 (5, with 2 at even indices);
//                 covariances 2C, 2C, (M∘C)^{-1} with M = 1 except M01 = M10 = M23 = M32 = -1, as in
//                 the authors' notebook, but with C_ij = 0.3^|i-j| (an AR(1) correlation; 0.5 would make M∘C indefinite) in place of
//                 their stored random correlation matrix.
std::unique_ptr<GaussianMixture> make_named_mixture(std::string_view name);

// A user target from C++: fn(x, logp, grad) with the Target::log_density contract.
class FunctionTarget final : public Target {
 public:
  using Fn = std::function<void(PointsView, std::span<double>, std::span<double>)>;
  FunctionTarget(int64_t d, Fn fn, std::string name = "user", std::optional<double> log_normaliser = std::nullopt);
  int64_t dim() const override { return d_; }
  std::string name() const override { return name_; }
  void log_density(PointsView x, std::span<double> logp, std::span<double> grad) const override;
  std::optional<double> log_normaliser() const override { return log_z_; }

 private:
  int64_t d_;
  Fn fn_;
  std::string name_;
  std::optional<double> log_z_;
};

// Target by name: "doublewell" (uses H), "gaussian" (N(0, I_d), uses d), "mixture4-lln", "mixture4-cp",
// "mixture20d". Unknown names throw otgen::Error listing the valid ones; a d other than 1 or the
// target's own dimension for a target other than "gaussian" is refused (it would be ignored).
std::unique_ptr<Target> make_target(std::string_view name, double H = 6.0, int64_t d = 1);

// ---------------------------------------------------------------------------------------------------
// Weighted particles and resampling

enum class ResampleScheme { Multinomial, Stratified, Systematic, Residual };
ResampleScheme parse_resample_scheme(std::string_view name, std::string_view argument = "--resample");  // "multinomial", ... ; throws otgen::Error
const char* resample_scheme_name(ResampleScheme s);

// Offspring indices (length n): ancestor of each new particle, sorted ascending. weights: normalised,
// non-negative, sum 1 (checked to 1e-6). Each scheme is unbiased: E[#{k : a_k = i}] = n w_i.
std::vector<int64_t> resample_indices(std::span<const double> weights, int64_t n, ResampleScheme scheme, Rng& rng);

struct WeightedParticles {
  Points x;                  // (n, d)
  std::vector<double> logw;  // length n; unnormalised allowed; all 0 = uniform

  WeightedParticles() = default;
  explicit WeightedParticles(Points points);  // uniform weights
  int64_t size() const { return x.n; }
  int64_t dim() const { return x.d; }
  void normalise();                                // shifts logw so that log sum exp(logw) = 0
  std::vector<double> weights() const;             // normalised weights
  double ess() const;                              // (sum w)^2 / sum w^2, in [1, n]
  void resample(ResampleScheme scheme, Rng& rng);  // copies ancestors, resets logw to -log n
};

// ---------------------------------------------------------------------------------------------------
// Samplers

// Termination and termination_name: otgen/core/termination.h, shared by every iterative solver.

struct StepRecord {
  int64_t step = 0;            // 1-based
  double time = 0;             // cumulative step sizes
  double ess = 0;              // of the weights after this step's reweighting, before its resampling
  bool resampled = false;      // resampling happened in this step
  int64_t grad_evals = 0;      // cumulative per-particle gradient evaluations
  double seconds = 0;          // cumulative wall time
  std::optional<double> log_z;       // running log-normaliser estimate, where defined
  std::optional<double> lambda;      // tempering parameter (tempered SMC)
  std::optional<double> acceptance;  // MALA acceptance rate of this step
  std::optional<double> bandwidth;   // KDE bandwidth used (birth-death, weighted WFR)
  std::optional<int64_t> jumps;      // kills + duplications (birth-death)
};

struct RunResult {
  WeightedParticles particles;  // final particles, log-weights normalised
  std::vector<StepRecord> trace;
  int64_t steps = 0;
  int64_t resamplings = 0;
  int64_t grad_evals = 0;
  double seconds = 0;
  std::optional<double> log_z;
  Termination termination = Termination::MaxSteps;
  std::string message;
};

struct RunOptions {
  int64_t steps = 1000;  // number of steps (> 0); tempered SMC (adaptive) stops earlier at lambda = 1
  bool progress_bar = true;
  void validate() const;
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual std::string name() const = 0;
  virtual bool weighted() const = 0;  // false: logw stays uniform (ULA, MALA, birth-death)
  // Runs from `start` (n >= 2 particles of the target's dimension, finite). Throws otgen::Error on bad
  // input and when the target returns NaN/inf (naming the step and the particle).
  RunResult run(const Target& target, WeightedParticles start, const RunOptions& run, const Context& ctx);

  struct State;  // internal per-run state (defined in src/wfr)

 protected:
  virtual void begin(State& s) = 0;
  virtual bool step(State& s) = 0;  // one step; false = converged (stop)
  virtual double step_size() const = 0;
};

// ULA: x' = x + dt grad log pi(x) + sqrt(2 dt) xi.
struct UlaOptions {
  double step = 0.01;  // dt > 0
  void validate() const;
};
// MALA: ULA proposal + Metropolis-Hastings accept/reject.
struct MalaOptions {
  double step = 0.01;
  void validate() const;
};

enum class BandwidthRule { Silverman, Scott };
struct KdeOptions {
  std::optional<double> bandwidth;  // fixed h > 0; empty = by rule, recomputed every step
  // Silverman: h = (4/(d+2))^{1/(d+4)} n_eff^{-1/(d+4)} sigma; Scott: h = n_eff^{-1/(d+4)} sigma, with
  // sigma the mean per-coordinate (weighted) standard deviation and n_eff the ESS.
  BandwidthRule rule = BandwidthRule::Silverman;
  void validate() const;
};

// Birth-death Langevin (Lu-Lu-Nolen), jump form of SPEC.md §4: a ULA step, then with
// r_i = log rho_hat(X_i) - log pi(X_i) centred, particle i jumps with probability 1 - exp(-|r_i| beta dt):
// r_i > 0 kills i (replaced by a copy of a uniformly chosen other particle), r_i < 0 duplicates i (over a
// uniformly chosen other particle). A particle is involved in at most one jump per step.
struct BirthDeathOptions {
  double step = 0.01;
  double beta = 1.0;  // reaction strength >= 0
  KdeOptions kde;
  void validate() const;
};

// Weighted WFR: ULA moves, Feynman-Kac log-weights d log w = -beta(t) [log rho_hat - log pi] dt, with
// rho_hat the weighted KDE; resample when ESS < ess_threshold * n.
struct WeightedWfrOptions {
  double step = 0.01;
  double beta = 1.0;
  std::function<double(double)> beta_schedule;  // optional beta(t); overrides beta when set
  KdeOptions kde;
  double ess_threshold = 0.5;  // in (0, 1]
  ResampleScheme resample = ResampleScheme::Systematic;
  void validate() const;
};

// SMC-WFR (Crucinio-Pathiraja): (1) resample (every step by default, else when ESS < threshold n),
// (2) m_j = X_j + gamma grad log pi(X_j), X'_j = m_j + sqrt(2 gamma) xi_j, (3)
// log w_i = log W_i + (1 - e^{-gamma}) [log pi(X'_i) - log sum_j W_j exp(-|X'_i - m_j|^2 / (4 gamma))].
struct SmcWfrOptions {
  double step = 0.01;  // gamma
  bool resample_every_step = true;
  double ess_threshold = 0.5;  // used when resample_every_step is false
  ResampleScheme resample = ResampleScheme::Systematic;
  void validate() const;
};
// Step (3) alone: log-weights (normalised) of new positions x_new given centres m and previous
// normalised log-weights log_w_prev (empty = uniform). The proposal-mixture LSE runs on the engine.
std::vector<double> smc_wfr_log_weights(const Target& target, PointsView m, PointsView x_new,
                                        std::span<const double> log_w_prev, double gamma, const Context& ctx);

// Tempered SMC on the geometric path mu0^(1-l) pi^l with mu0 = N(reference_mean, reference_std^2 I):
// reweight by (l_new - l_old)(log pi - log mu0), resample when ESS < ess_threshold n, then `moves`
// MALA (or ULA) steps targeting the current path point. Fixed schedule: l_k = 1 - exp(-k dt), with the
// last step set to l = 1; adaptive: l_new by bisection so that the ESS of the reweighted particles is
// target_ess * n, resampling after every step before l = 1 (then steps is only a cap). log Z accumulates log sum_i W_i exp(delta_i).
struct TemperedSmcOptions {
  double step = 0.01;         // dt of the fixed schedule and the MCMC step size
  bool adaptive = false;
  double target_ess = 0.5;    // adaptive: in (0, 1)
  double ess_threshold = 0.5; // resampling trigger
  bool mala = true;           // false: ULA moves
  int moves = 1;              // MCMC moves per step (>= 1)
  double reference_mean = 0.0;
  double reference_std = 1.0; // > 0
  ResampleScheme resample = ResampleScheme::Systematic;
  void validate() const;
};

// The general weighted SDE of SPEC.md §4: dX = b(t, X) dt + sigma(t) dW (Euler-Maruyama) tracking the
// unnormalised path p_t with
//   d log w = [ d/dt log p_t + div b + b . grad log p_t - (sigma^2/2)(Lap log p_t + |grad log p_t|^2) ] dt
// evaluated at the start of each step; resampling when ESS < ess_threshold n. log Z estimates
// log(Z_T / Z_0) for a start distributed as p_0 / Z_0.
struct PathPoint {
  // Filled by the path callback for the n particles at time t: log p_t, d/dt log p_t, grad log p_t
  // (n * d) and the Laplacian of log p_t.
  std::span<double> logp, dlogp_dt, grad, laplacian;
};
struct DriftPoint {
  std::span<double> b, div_b;  // drift (n * d) and its divergence (n)
};
struct WeightedSdeOptions {
  double step = 0.01;
  std::function<void(double t, PointsView x, PathPoint out)> path;
  // Drift; empty = Langevin on the path, b = (sigma^2 / 2) grad log p_t (then the weight rate is
  // exactly d/dt log p_t: annealed importance sampling).
  std::function<void(double t, PointsView x, std::span<const double> grad_logp, DriftPoint out)> drift;
  std::function<double(double t)> sigma;  // empty = sqrt(2)
  double ess_threshold = 0.5;
  ResampleScheme resample = ResampleScheme::Systematic;
  void validate() const;
};

std::unique_ptr<Sampler> make_ula(UlaOptions o);
std::unique_ptr<Sampler> make_mala(MalaOptions o);
std::unique_ptr<Sampler> make_birth_death(BirthDeathOptions o);
std::unique_ptr<Sampler> make_weighted_wfr(WeightedWfrOptions o);
std::unique_ptr<Sampler> make_smc_wfr(SmcWfrOptions o);
std::unique_ptr<Sampler> make_tempered_smc(TemperedSmcOptions o);
std::unique_ptr<Sampler> make_weighted_sde(WeightedSdeOptions o);

// A sampler by name ("ula", "mala", "birth-death", "wfr", "smc-wfr", "tempered-smc") with the common
// options; unknown names throw otgen::Error listing the valid ones.
struct SamplerSpec {
  double step = 0.01;
  double beta = 1.0;
  std::optional<double> bandwidth;
  BandwidthRule rule = BandwidthRule::Silverman;
  // Resample when ESS < ess_threshold * N (wfr, tempered-smc, and smc-wfr when given); empty = the
  // sampler's default: 0.5, and for smc-wfr resampling at every step.
  std::optional<double> ess_threshold;
  ResampleScheme resample = ResampleScheme::Systematic;
  bool adaptive = false;  // tempered SMC
  bool mala_moves = true; // tempered SMC
  int moves = 1;          // tempered SMC: MCMC moves per step
};
std::unique_ptr<Sampler> make_sampler(std::string_view name, const SamplerSpec& spec);
// The SamplerSpec fields (besides step) that each named sampler reads: "beta", "bandwidth",
// "bandwidth_rule" (birth-death, wfr), "ess_threshold", "resample" (wfr, smc-wfr, tempered-smc),
// "adaptive", "mala_moves", "moves" (tempered-smc). A front end passes the fields its user set;
// one the sampler would ignore throws otgen::Error naming it and the samplers that use it.
void require_sampler_options(std::string_view name, std::span<const std::string_view> given);

// MALA's log acceptance probability min(0, log alpha) for a move x -> y (both length d) with
// log pi and gradients given: log alpha = lp_y - lp_x + log q(x | y) - log q(y | x),
// log q(a | b) = -|a - b - dt grad(b)|^2 / (4 dt).
double mala_log_acceptance(std::span<const double> x, double logp_x, std::span<const double> grad_x,
                           std::span<const double> y, double logp_y, std::span<const double> grad_y, double dt);

// KDE bandwidth by rule for (weighted) particles.
double kde_bandwidth(PointsView x, std::span<const double> weights, BandwidthRule rule);

// Initial particles from a spec: "gaussian" (N(0, I)), "point:<x>" (every coordinate = x) or "mode:<K>"
// (every particle drawn from component K, 1-based, of a Gaussian-mixture target). Drawn from stream
// (seed, 0); samplers use streams 1, 2, ... Throws otgen::Error naming "init" on a bad spec.
Points initial_particles(const Target& target, std::string_view spec, int64_t n, uint64_t seed);

// Gaussian KDE of the particles at themselves, on the engine:
// out[i] = log sum_j W_j N(x_i; x_j, h^2 I) with W = exp(log_w) normalised (empty = uniform 1/n).
std::vector<double> kde_log_density(PointsView x, std::span<const double> log_w, double h, const Context& ctx);

}  // namespace otgen::wfr
