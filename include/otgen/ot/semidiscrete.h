// Semidiscrete optimal transport (SPEC.md §1): a continuous source mu = N(0, I_d) (the noise) and a
// discrete target sum_j b_j delta_{y_j} (the data). The dual potential g (one number per data point) is
// fitted once by stochastic gradient ascent on the concave semi-dual
//     F(g) = E_{x~mu}[f_g(x)] + <b, g>,   dF/dg = b - E_x[s(x)],
// with f_g the soft (eps > 0) or hard (eps = 0) c-transform and s(x) the assignment row
//     s(x)_j = softmax_j(log b_j + (g_j - c(x, y_j)) / eps)     (one-hot argmax at eps = 0).
// After fitting, fresh noise is paired with data by a maximum inner-product search (assign) or by
// Gumbel-max sampling from s(x) (sample); neither ever materialises a row of the n x N matrix.
//
// Conventions (SPEC.md §0):
//   * Cost `SqEuclideanHalf` (default) is |x - y|^2 / 2; `Dot` is -<x, y>. POT and OTT-JAX call
//     |x - y|^2 "sqeuclidean": their epsilon and potentials are twice ours.
//   * All quadratic work goes through the score engine (otgen/kernels/scores.h) on S_ij = <x_i, y_j> + h_j with
//     h_j = g_j - |y_j|^2 / 2 (half squared cost) or h_j = g_j (dot cost).
//   * Weights b: length N, non-negative, finite, summing to 1 within 1e-6 (never silently renormalised
//     beyond that); empty = uniform. b_j = 0 masks point j: it is never assigned and its g_j is 0.
//   * Potentials are returned centred: mean 0 over the support (per class for per-class conditioning).
//   * Conditional OT: with labels l_j in [0, K), the source is mu x w with class weights
//     w_k = sum_{l_j = k} b_j, and the cost is c(x, y) + beta [k != l] (`class_penalty` = beta).
//     beta = infinity (default) is one independent potential per class, fitted in one call: noise of
//     class k is matched only inside class k.
//   * Determinism: the same Context seed and thread count give the same bits.
//   * Sharded (docs/dist.md): with a Context communicator of more than one rank, y, b and g (and g0)
//     are this rank's contiguous rows of the whole, every rank draws the same noise, and assign,
//     sample, check and fit give every rank the single process's result (indices are global; a fit's
//     Result::g is the whole potential). Not sharded yet (every rank throws the same CollectiveError):
//     labels, relative epsilon, top-k, the coarse-to-fine auto start and PCA-reduced matching.
//   * PCA-reduced matching (Options::pca = K, docs/semidiscrete.md): the fit and the map run in the span
//     of the top K principal directions U (K x d, orthonormal rows) of the data: between N(0, I_K) =
//     U N(0, I_d) and z_j = U y_j, an exact semidiscrete problem in K dimensions. The map takes
//     full-dimensional noise x and pairs it through U x (SemidiscreteMap::pca_basis).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "otgen/core/context.h"
#include "otgen/core/points.h"
#include "otgen/kernels/scores.h"
#include "otgen/core/termination.h"

namespace otgen {

enum class SdotCost { SqEuclideanHalf, Dot };
enum class SdotOptimizer { Sgd, Adam };
enum class SdotSchedule { Constant, Linear, Cosine };
enum class SdotAveraging { None, Ema, Polyak, Poly };
enum class SdotInit { Auto, Zero, HalfNorm, Gaussian };

// Names used by the CLI, the run record and error messages: "sqeuclidean_half", "dot"; "sgd", "adam";
// "constant", "linear", "cosine"; "none", "ema", "polyak", "poly"; "auto", "zero", "half-norm", "gaussian"
// (termination names: termination_name in otgen/core/termination.h).
const char* to_string(SdotCost v);
const char* to_string(SdotOptimizer v);
const char* to_string(SdotSchedule v);
const char* to_string(SdotAveraging v);
const char* to_string(SdotInit v);
// Parsers: throw otgen::Error naming `argument`, the value and the valid names.
SdotCost parse_sdot_cost(std::string_view s, std::string_view argument = "cost");
SdotOptimizer parse_sdot_optimizer(std::string_view s, std::string_view argument = "optimizer");
SdotSchedule parse_sdot_schedule(std::string_view s, std::string_view argument = "schedule");
SdotAveraging parse_sdot_averaging(std::string_view s, std::string_view argument = "averaging");
SdotInit parse_sdot_init(std::string_view s, std::string_view argument = "init");

namespace sdot_detail {
struct Prepared;
}

// The target side of a semidiscrete problem (OTT-JAX's problem / solver / output split): the data,
// their weights and classes, the cost and the class penalty. SemidiscreteOT fits a potential for it
// (SemidiscreteOT::problem names one with the solver's cost); a SemidiscreteMap is a problem plus a
// potential. Non-owning views, valid while the arrays live.
struct SdotProblem {
  PointsView y;                      // (N, d) target points
  std::span<const double> b;         // length N weights, or empty = uniform
  std::span<const int64_t> labels;   // empty = unconditional; else length N in [0, K)
  SdotCost cost = SdotCost::SqEuclideanHalf;
  double class_penalty = std::numeric_limits<double>::infinity();  // beta (labels only); > 0
};

// A fitted (or given) semidiscrete coupling: a problem and its potential. Non-owning views, valid
// while the arrays live.
struct SemidiscreteMap : SdotProblem {
  SemidiscreteMap() = default;
  SemidiscreteMap(const SdotProblem& problem, std::span<const float> g, double epsilon,
                  std::span<const float> pca_basis = {})
      : SdotProblem(problem), g(g), epsilon(epsilon), pca_basis(pca_basis) {}
  std::span<const float> g;          // length N potential
  double epsilon = 0.0;              // absolute; 0 = hard assignment
  // PCA-reduced matching: the (K, d) row-major basis U (orthonormal rows, 1 <= K <= d) the potential
  // was fitted in (Result::pca_basis); every call projects its d-dimensional noise x to U x and
  // matches it with U y_j. Empty = the full space.
  std::span<const float> pca_basis;
  void validate() const;             // shapes, finiteness, weights, labels (every class has mass > 0), basis
  // Optional, from sdot_prepare(): the checked (and projected) data, |y_j|^2 and the int8 screen
  // (otgen/kernels/lattice.h), reused by every call below instead of being rebuilt per call. Used only while y, b, labels, cost,
  // class_penalty and pca_basis are the arrays and values it was made from (by address: if you change the
  // arrays' contents in place, call sdot_prepare again).
  std::shared_ptr<const sdot_detail::Prepared> prepared;
};

// Fills map.prepared for the map's current arrays (validating them; throws otgen::Error).
void sdot_prepare(SemidiscreteMap& map, const Context& ctx, const ScoreOptions& engine = {});
// Whether map.prepared screens its eps = 0 searches in int8 (data on an 8-bit lattice, AVX-512 VNNI).
bool sdot_int8_screen(const SemidiscreteMap& map);
// The engine path (otgen/core/cpu_features.h) of the map's searches under `engine`: "vnni" (int8 screen),
// "avx512bf16" or "fp32"; "fp32" for eps > 0 (Gumbel draws and softmax sums run in float32). For run records.
std::string_view sdot_argmax_engine(const SemidiscreteMap& map, const ScoreOptions& engine = {});

// n draws of N(0, I_d), the default source: batch `step` of stream (seed, Stream::Noise)
// (otgen/core/streams.h); row i has its own counter-based stream, so the draws do not depend on threads.
Points sdot_noise(int64_t n, int64_t d, uint64_t seed, const Context& ctx, uint64_t step = 0);
// n noise classes k ~ w_k = sum_{l_j = k} b_j for a conditional map (empty for an unconditional one),
// from the classes twin of the same stream.
std::vector<int64_t> sdot_noise_classes(const SemidiscreteMap& map, int64_t n, uint64_t seed, uint64_t step = 0);
// The same classes from explicit class weights w (w_k >= 0, some > 0): what a coupling uses.
std::vector<int64_t> noise_classes(std::span<const double> class_weights, int64_t n, uint64_t seed, uint64_t step = 0);

// The row of each noise point under the map. x: (n, d) with the map's d. x_labels: the class of
// each noise row (required iff the map has labels; values in [0, K)).
// assign: argmax_j (g_j - c(x, y_j) - beta [k != l_j]) over the support, lowest j on ties
// (eps is ignored: this is the eps = 0 map, or the mode of s(x)).
std::vector<int64_t> sdot_assign(const SemidiscreteMap& map, PointsView x, const Context& ctx,
                                 std::span<const int64_t> x_labels = {}, const ScoreOptions& engine = {});
// sample: j ~ s(x) by Gumbel-max (eps > 0; Gumbel noise keyed by (seed, row, column)); at eps = 0 the
// same as sdot_assign. Same seed, labels and x: same result, whatever the thread count.
std::vector<int64_t> sdot_sample(const SemidiscreteMap& map, PointsView x, uint64_t seed, const Context& ctx,
                                 std::span<const int64_t> x_labels = {}, const ScoreOptions& engine = {});
// top-k: the k best rows of each noise point by score (decreasing), n * k indices; 1 <= k <= the size
// of the smallest candidate set (N, or the smallest class for per-class maps).
std::vector<int64_t> sdot_topk(const SemidiscreteMap& map, PointsView x, int64_t k, const Context& ctx,
                               std::span<const int64_t> x_labels = {}, const ScoreOptions& engine = {});

// Estimates of the second marginal m(g) = E_x[s(x)] against b.
struct SdotMarginalStats {
  double chi2 = 0;        // unbiased estimate of sum_j m_j^2 / b_j - 1 (SPEC.md §1); may be slightly < 0
  double tv = 0;          // 0.5 * sum_j |m_hat_j - b_j|, m_hat from the draws (biased up by sampling noise)
  std::optional<double> tv_floor;  // eps = 0: TV of an exact multinomial sample of the same size from b
                                   // (the noise floor of `tv` for a perfect g); empty for eps > 0
  std::optional<double> chi2_sd;   // eps = 0: standard deviation of the chi2 estimate (sdot_chi2_sd)
  std::optional<double> tv_bound;  // eps = 0: min(1, 0.5 sqrt(chi2 + 2 chi2_sd)), an upper bound on the
                                   // true TV of m(g) (Cauchy-Schwarz: TV <= sqrt(chi2) / 2; TV <= 1) at
                                   // ~97.7% confidence (chi2 estimate ~ normal); unlike `tv`, it needs no
                                   // more draws than the chi2 does
  double min_ratio = 0;   // min_j m_hat_j / b_j over the support
  double max_ratio = 0;   // max_j m_hat_j / b_j over the support
  int64_t empty = 0;      // support points with m_hat_j = 0 (never assigned in the sample)
  int64_t draws = 0;
};

// Chi2, TV and ratios from `repeats` fresh batches of `batch` noise draws, pooled: the chi2 is the
// unbiased estimate of SPEC.md §1 with B = batch * repeats rows (all draws are independent, so pooling
// keeps it unbiased and lowers its variance). Noise and noise classes are drawn from `seed`.
// eps = 0 uses assignment counts; eps > 0 uses the rows s(x) (computed in row chunks).
SdotMarginalStats sdot_check(const SemidiscreteMap& map, int64_t batch, int64_t repeats, uint64_t seed,
                             const Context& ctx, const ScoreOptions& engine = {});

// The unbiased one-batch chi2 estimate from column sums of S (sum_i S_ij) and of its squares
// (sum_i S_ij^2) over B rows; masked columns (b_j = 0) must have zero sums. B >= 2.
double sdot_chi2_estimate(std::span<const double> col_sum, std::span<const double> col_sum_sq,
                          std::span<const double> b, int64_t B);

// The standard deviation of sdot_chi2_estimate for M draws of hard counts c_j (eps = 0): the variance
// of the U-statistic,
//   Var = 4 (M - 2) / (M (M - 1)) Var_x(m_x / b_x) + 2 / (M (M - 1)) Var(h),  h(x, x') = [x = x'] / b_x - 1,
// with its moments of m estimated without bias from the counts' factorial moments. M >= 3.
double sdot_chi2_sd(std::span<const double> counts, std::span<const double> b, int64_t M);

// The chi2 for people: "chi2 = -0.0027 +- 0.0015 (unbiased estimate; target 0.001 met)". The sd part
// only with `sd`, the target part only with target > 0; "can be < 0" is said when the estimate is.
std::string sdot_chi2_text(double chi2, std::optional<double> sd, double target = 0);

// eps_abs = eps_rel * std(C), C the cost matrix of `noise_draws` N(0, I) draws (seeded) against up to
// `max_points` support points (a seeded subset when N is larger), in double.
double sdot_reference_cost_std(PointsView y, std::span<const double> b, SdotCost cost, uint64_t seed,
                               const Context& ctx, int64_t noise_draws = 1024, int64_t max_points = 4096);

class SemidiscreteOT {
 public:
  struct Result;
  // Fields marked "auto" are derived from the data when unset (docs/semidiscrete.md, "Automatic
  // defaults"); Result says what was used. A set field means what it always meant.
  struct Options {
    double epsilon = 0.0;          // >= 0; 0 = hard (unregularised) OT
    bool relative_epsilon = false; // epsilon (and warmup_delta) are multiples of std(C) of a reference batch
    SdotCost cost = SdotCost::SqEuclideanHalf;
    int64_t batch_size = 1024;     // noise draws per step (>= 2)
    int64_t steps = 10000;         // maximum number of steps (>= 1)
    SdotOptimizer optimizer = SdotOptimizer::Sgd;
    SdotSchedule schedule = SdotSchedule::Linear;  // step size schedule from lr to lr_final over `steps`
    // Step size at step 0 (> 0): SGD g += lr * (b - m_hat); Adam: lr * m / (sqrt(v) + adam_eps).
    // auto: lr_scale() of the data times 0.5 (SGD), or gap_scale times 0.5 (Adam).
    std::optional<double> lr;
    // Step size at the last step for linear / cosine (>= 0, <= lr). auto: lr / 100 when lr is auto,
    // else min(0.05, lr) (the historical default).
    std::optional<double> lr_final;
    double adam_beta1 = 0.9;       // Adam moments, in [0, 1)
    double adam_beta2 = 0.999;
    double adam_eps = 1e-8;        // > 0
    // The returned iterate (the last one is noisy). poly: polynomial-decay averaging,
    // gbar += (1 + poly_gamma) / (t + 1 + poly_gamma) * (g - gbar): a running average whose window
    // grows with the run, so its noise keeps falling (EMA's stops at its fixed window).
    SdotAveraging averaging = SdotAveraging::Poly;
    double poly_gamma = 3.0;       // >= 0 (0 = the uniform average of every iterate)
    double ema_decay = 0.99;       // EMA: gbar = decay * gbar + (1 - decay) * g, in [0, 1)
    double polyak_start = 0.5;     // Polyak: uniform average of the iterates from step polyak_start * steps
    double polyak_prior = 0;       // Polyak, warm start g0 only: g0 counts as this many averaged iterates
                                   // (resume an averaged fit: the steps the previous run averaged); >= 0
    // Starting potential when no g0 is given: zero (g = 0), half-norm (g = |y|^2 / 2 for the half cost,
    // i.e. h = 0), gaussian (h_j = -|y_j - mu|^2 / (2 s): the Brenier map of N(0, I) to N(mu, s^2 I),
    // mu and s from the weighted data, per class for per-class potentials), or auto: the candidate
    // with the smallest chi2 on one fresh batch of max(batch_size, 4096) draws.
    SdotInit init = SdotInit::Auto;
    double warmup_delta = 0.0;     // eps warm-up: eps_t = eps + delta * (1 - t / warmup_steps) ...
    int64_t warmup_steps = 0;      // ... for t < warmup_steps (>= 0); delta >= 0
    // Evaluate chi2 of the averaged g every K steps and at the end (0 = never: no stopping rule, no
    // chi2 in the result). auto: max(50, 4 * chi2_repeats) steps.
    std::optional<int64_t> chi2_every;
    // ... over R fresh batches (>= 1) of batch_size draws, pooled. auto (eps = 0): enough draws M for
    // a chi2 standard deviation of target_chi2 / 4 at a perfect g (sd ~ sqrt(2 N) / M), clamped to
    // [4, 256]; 16 without a target or at eps > 0.
    std::optional<int64_t> chi2_repeats;
    // Stop (Converged, stopped_by "target_chi2") at the first check, after the warm-up, where
    // chi2 + 2 sd <= target_chi2 (an upper bound on the true chi2 at ~97.7% confidence; sd: the
    // U-statistic's at eps = 0, the spread of the per-batch estimates at eps > 0). 0 = never.
    double target_chi2 = 0.01;
    double chi2_threshold = 0;     // also stop (stopped_by "chi2_threshold") when the estimate alone
                                   // is <= this; 0 = never
    double time_limit = 0;         // stop after this many seconds (stopped_by "time_limit"); 0 = none
    // One history row per log_every steps (>= 1), plus every chi2 check. auto: min(100, chi2_every) when
    // chi2_every is given and > 0, else 100 (history_every()).
    std::optional<int64_t> log_every;
    double class_penalty = std::numeric_limits<double>::infinity();  // beta of the augmented cost (> 0)
    int64_t reference_draws = 1024;   // relative epsilon: noise draws of the reference cost matrix
    int64_t reference_points = 4096;  // ... and at most this many data points
    ScoreOptions engine;           // tile sizes of the score engine
    // PCA-reduced matching: fit in the span of the top `pca` principal directions of the data (the
    // covariance weighted by b; in [1, d]), noise drawn in d dimensions and projected. 0 = off.
    // Not sharded yet.
    int64_t pca = 0;
    // Called after every chi2 check with the result so far (g centred, history, steps, chi2); lets a
    // long run be monitored or checkpointed. Empty = none.
    std::function<void(const Result&)> on_check;
    void validate() const;         // throws otgen::Error naming the field, the value and the rule
    int64_t history_every() const;  // log_every, resolved
  };

  struct HistoryRow {
    int64_t step = 0;              // steps done when recorded
    std::optional<double> chi2;    // at chi2 checks only
    std::optional<double> tv;      // at chi2 checks: TV of the pooled check batches (noisy, biased up)
    std::optional<double> tv_bound;  // at chi2 checks, eps = 0: 0.5 sqrt(chi2 + 2 sd) (SdotMarginalStats)
    std::optional<double> chi2_sd;   // at chi2 checks: the standard deviation of chi2 (see target_chi2)
    double loss = 0;               // minibatch semi-dual F(g) of the current iterate, mean since last row
    double lr = 0;
    double epsilon = 0;            // absolute eps of that step (warm-up included)
    double seconds = 0;            // since the start of fit
  };

  struct Result {
    std::vector<float> g;          // the averaged potential, centred (per class when per-class)
    double epsilon = 0;            // absolute epsilon used (after the warm-up)
    std::optional<double> reference_cost_std;  // std(C) when relative_epsilon
    int64_t steps = 0;             // steps done
    std::optional<double> chi2;    // the last chi2 check
    std::vector<HistoryRow> history;
    Termination termination = Termination::MaxSteps;
    // The rule that ended the run: "target_chi2", "chi2_threshold", "steps", "time_limit",
    // "interrupted" (Context::should_stop; termination Interrupted) or "numerical_failure".
    std::string stopped_by = "steps";
    std::string message;
    // What the automatic defaults resolved to (or the options as given).
    double lr = 0, lr_final = 0;
    int64_t chi2_every = 0, chi2_repeats = 0;
    std::string init = "zero";     // "given" (g0), "zero", "half-norm" or "gaussian"
    double gap_scale = 0;          // q: the 10% quantile of the top-2 score gap at the start (eps = 0 scores)
    double lr_scale = 0;           // 1 / mean Hessian diagonal estimated from q: 5 q N_support (+ eps N_support)
    double seconds = 0;
    bool int8_screen = false;      // the eps = 0 searches used the int8 screen (otgen/kernels/lattice.h)
    std::string engine = "fp32";   // their path: "vnni", "avx512bf16" or "fp32" (otgen/core/cpu_features.h)
    // PCA-reduced matching (Options::pca = K): the basis U, (K, d) row-major float32, orthonormal rows
    // by decreasing variance; empty when off. map() hands it to the map.
    std::vector<float> pca_basis;
    int64_t pca = 0;
  };

  SemidiscreteOT();                          // default options
  explicit SemidiscreteOT(Options options);  // validates
  const Options& options() const { return options_; }

  // Fits g for the target (y, b). b: empty = uniform. labels: empty, or per-point classes (conditional;
  // see the header comment). g0: empty (start at 0) or a length-N warm start. Progress bar on stderr
  // unless ctx.quiet. Throws otgen::Error on bad input (NaN/Inf, bad weights, bad labels, N = 0, ...).
  Result fit(PointsView y, std::span<const double> b, const Context& ctx, std::span<const int64_t> labels = {},
             std::span<const float> g0 = {}) const;

  // The problem of the target (y, b, labels) under this solver's cost and class penalty.
  SdotProblem problem(PointsView y, std::span<const double> b, std::span<const int64_t> labels = {}) const {
    return {y, b, labels, options_.cost, options_.class_penalty};
  }
  // The map of a fit result (views into y, b, labels, result.g and result.pca_basis).
  SemidiscreteMap map(PointsView y, std::span<const double> b, const Result& result,
                      std::span<const int64_t> labels = {}) const {
    return {problem(y, b, labels), result.g, result.epsilon, result.pca_basis};
  }

 private:
  Options options_;
};

}  // namespace otgen
