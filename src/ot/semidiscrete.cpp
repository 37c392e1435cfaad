// SemidiscreteOT: options, names, and the stochastic fit of the dual potential (SPEC.md §1).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <string>

#include "ot/semidiscrete_internal.h"
#include "otgen/error.h"
#include "otgen/progress.h"
#include "otgen/rng.h"
#include "otgen/semidiscrete.h"

namespace otgen {

using namespace sdot_detail;

const char* to_string(SdotCost v) { return v == SdotCost::Dot ? "dot" : "sqeuclidean_half"; }
const char* to_string(SdotOptimizer v) { return v == SdotOptimizer::Adam ? "adam" : "sgd"; }
const char* to_string(SdotSchedule v) {
  switch (v) {
    case SdotSchedule::Constant: return "constant";
    case SdotSchedule::Linear: return "linear";
    case SdotSchedule::Cosine: return "cosine";
  }
  return "?";
}
const char* to_string(SdotAveraging v) {
  switch (v) {
    case SdotAveraging::None: return "none";
    case SdotAveraging::Ema: return "ema";
    case SdotAveraging::Polyak: return "polyak";
  }
  return "?";
}

SdotCost parse_sdot_cost(std::string_view s, std::string_view argument) {
  if (s == "sqeuclidean_half") return SdotCost::SqEuclideanHalf;
  if (s == "dot") return SdotCost::Dot;
  fail_argument(argument, s, "one of sqeuclidean_half, dot");
}
SdotOptimizer parse_sdot_optimizer(std::string_view s, std::string_view argument) {
  if (s == "sgd") return SdotOptimizer::Sgd;
  if (s == "adam") return SdotOptimizer::Adam;
  fail_argument(argument, s, "one of sgd, adam");
}
SdotSchedule parse_sdot_schedule(std::string_view s, std::string_view argument) {
  if (s == "constant") return SdotSchedule::Constant;
  if (s == "linear") return SdotSchedule::Linear;
  if (s == "cosine") return SdotSchedule::Cosine;
  fail_argument(argument, s, "one of constant, linear, cosine");
}
SdotAveraging parse_sdot_averaging(std::string_view s, std::string_view argument) {
  if (s == "none") return SdotAveraging::None;
  if (s == "ema") return SdotAveraging::Ema;
  if (s == "polyak") return SdotAveraging::Polyak;
  fail_argument(argument, s, "one of none, ema, polyak");
}

void SemidiscreteOT::Options::validate() const {
  require(std::isfinite(epsilon) && epsilon >= 0, "epsilon", epsilon, "a finite number >= 0 (0 = hard OT)");
  require(batch_size >= 2, "batch_size", batch_size, "an integer >= 2");
  require(steps >= 1, "steps", steps, "a positive integer");
  require(std::isfinite(lr) && lr > 0, "lr", lr, "a positive finite step size");
  require(std::isfinite(lr_final) && lr_final >= 0 && lr_final <= lr, "lr_final", lr_final,
          "a number in [0, lr = " + to_text(lr) + "]");
  require(adam_beta1 >= 0 && adam_beta1 < 1, "adam_beta1", adam_beta1, "a number in [0, 1)");
  require(adam_beta2 >= 0 && adam_beta2 < 1, "adam_beta2", adam_beta2, "a number in [0, 1)");
  require(std::isfinite(adam_eps) && adam_eps > 0, "adam_eps", adam_eps, "a positive finite number");
  require(ema_decay >= 0 && ema_decay < 1, "ema_decay", ema_decay, "a number in [0, 1)");
  require(polyak_start >= 0 && polyak_start < 1, "polyak_start", polyak_start, "a fraction in [0, 1)");
  require(polyak_prior >= 0 && std::isfinite(polyak_prior), "polyak_prior", polyak_prior, "a finite number >= 0");
  require(std::isfinite(warmup_delta) && warmup_delta >= 0, "warmup_delta", warmup_delta, "a finite number >= 0");
  require(warmup_steps >= 0, "warmup_steps", warmup_steps, "an integer >= 0");
  require(chi2_every >= 0, "chi2_every", chi2_every, "an integer >= 0 (0 = never)");
  require(chi2_repeats >= 1, "chi2_repeats", chi2_repeats, "a positive integer");
  require(std::isfinite(chi2_threshold) && chi2_threshold >= 0, "chi2_threshold", chi2_threshold,
          "a finite number >= 0 (0 = never stop early)");
  require(log_every >= 1, "log_every", log_every, "a positive integer");
  require(class_penalty > 0 && !std::isnan(class_penalty), "class_penalty", class_penalty,
          "a positive number (infinity = one potential per class)");
  require(reference_draws >= 1, "reference_draws", reference_draws, "a positive integer");
  require(reference_points >= 1, "reference_points", reference_points, "a positive integer");
  engine.validate();
}

SemidiscreteOT::SemidiscreteOT() : SemidiscreteOT(Options{}) {}

SemidiscreteOT::SemidiscreteOT(Options options) : options_(std::move(options)) { options_.validate(); }

SemidiscreteMap SemidiscreteOT::map(PointsView y, std::span<const double> b, const Result& result,
                                    std::span<const int64_t> labels) const {
  SemidiscreteMap m;
  m.y = y;
  m.g = result.g;
  m.b = b;
  m.epsilon = result.epsilon;
  m.cost = options_.cost;
  m.labels = labels;
  m.class_penalty = options_.class_penalty;
  return m;
}

namespace {

constexpr uint64_t kTagNoise = 0x4e6f697365ULL;
constexpr uint64_t kTagChi2 = 0x43686932ULL;
constexpr uint64_t kTagReference = 0x52656645ULL;

double step_size(const SemidiscreteOT::Options& o, int64_t t) {
  if (o.schedule == SdotSchedule::Constant || o.steps == 1) return o.lr;
  const double frac = static_cast<double>(t) / static_cast<double>(o.steps - 1);
  if (o.schedule == SdotSchedule::Linear) return o.lr + (o.lr_final - o.lr) * frac;
  return o.lr_final + 0.5 * (o.lr - o.lr_final) * (1.0 + std::cos(std::numbers::pi * frac));
}

// Centres g: mean 0 over the support, per class for per-class potentials; masked entries are 0.
std::vector<float> centred(const Prepared& P, const std::vector<double>& g) {
  std::vector<float> out(g.size(), 0.0f);
  const int64_t K = P.per_class ? P.num_classes : 1;
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    int64_t n = 0;
    for (int64_t j = 0; j < P.N; ++j)
      if (P.b[j] > 0 && (!P.per_class || P.labels[j] == k)) s += g[j], ++n;
    const double mean = n > 0 ? s / static_cast<double>(n) : 0.0;
    for (int64_t j = 0; j < P.N; ++j)
      if (P.b[j] > 0 && (!P.per_class || P.labels[j] == k)) out[j] = static_cast<float>(g[j] - mean);
  }
  return out;
}

// Finite and small enough to stay finite as float scores (|g| <= 1e30).
bool all_finite(const std::vector<double>& v) {
  for (double a : v)
    if (!(std::abs(a) <= 1e30)) return false;
  return true;
}

}  // namespace

SemidiscreteOT::Result SemidiscreteOT::fit(PointsView y, std::span<const double> b, const Context& ctx,
                                           std::span<const int64_t> labels, std::span<const float> g0) const {
  ctx.validate();
  const Options& o = options_;
  const auto t_start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(); };
  // The int8 screen serves hard (eps = 0) steps and checks only.
  const Prepared P = prepare(y, b, o.cost, labels, o.class_penalty,
                             o.engine.int8_screen && o.epsilon == 0 ? &ctx : nullptr);
  const size_t N = static_cast<size_t>(P.N);

  Result res;
  double eps = o.epsilon, delta = o.warmup_delta;
  if (o.relative_epsilon && (o.epsilon > 0 || o.warmup_delta > 0)) {
    const double sd = sdot_reference_cost_std(y, P.b, o.cost, mix_seed(ctx.seed, kTagReference), ctx,
                                              o.reference_draws, o.reference_points);
    res.reference_cost_std = sd;
    eps *= sd;
    delta *= sd;
  }
  res.epsilon = eps;
  res.int8_screen = P.screened();

  std::vector<double> g(N, 0.0);
  if (!g0.empty()) {
    require(g0.size() == N, "initial potential", "length " + std::to_string(g0.size()),
            "length N = " + std::to_string(P.N));
    require_finite(g0, "initial potential");
    for (size_t j = 0; j < N; ++j) g[j] = P.b[j] > 0 ? g0[j] : 0.0;
  }
  std::vector<double> gbar = g, adam_m(N, 0.0), adam_v(N, 0.0), col(N);
  const int64_t polyak_from = static_cast<int64_t>(std::floor(o.polyak_start * static_cast<double>(o.steps)));
  // Polyak weight so far; a warm start may count as polyak_prior iterates (gbar starts at g0).
  double polyak_weight = o.averaging == SdotAveraging::Polyak ? o.polyak_prior : 0.0;
  require(polyak_weight == 0 || !g0.empty(), "polyak_prior", o.polyak_prior,
          "0 without a warm start (it weighs the initial potential g0 in the average)");
  double loss_acc = 0;
  int64_t loss_n = 0;
  double g_dot_b = 0;
  std::optional<double> last_chi2, last_chi2_sd;
  res.termination = Termination::MaxSteps;

  Progress progress("sdot fit", o.steps, ctx);
  int64_t t = 0;
  for (; t < o.steps; ++t) {
    const double eps_t = t < o.warmup_steps
                             ? eps + delta * (1.0 - static_cast<double>(t) / static_cast<double>(o.warmup_steps))
                             : eps;
    const double lr_t = step_size(o, t);
    const Points x = draw_noise(ctx.seed, kTagNoise, static_cast<uint64_t>(t), o.batch_size, P.d, ctx);
    const auto xl = draw_classes(P, ctx.seed, kTagNoise, static_cast<uint64_t>(t), o.batch_size);
    std::fill(col.begin(), col.end(), 0.0);
    const double f_sum = accumulate_batch(P, x, xl, g, eps_t, col, {}, ctx, o.engine);
    g_dot_b = 0;
    for (size_t j = 0; j < N; ++j) g_dot_b += P.b[j] * g[j];
    const double loss = f_sum / static_cast<double>(o.batch_size) + g_dot_b;

    // Ascent step on F: grad_j = b_j - (1/B) sum_i s(x_i)_j (0 on masked points).
    const double invB = 1.0 / static_cast<double>(o.batch_size);
    std::vector<double> g_new = g;
    if (o.optimizer == SdotOptimizer::Sgd) {
      for (size_t j = 0; j < N; ++j)
        if (P.b[j] > 0) g_new[j] += lr_t * (P.b[j] - col[j] * invB);
    } else {
      const double c1 = 1.0 - std::pow(o.adam_beta1, static_cast<double>(t + 1));
      const double c2 = 1.0 - std::pow(o.adam_beta2, static_cast<double>(t + 1));
      for (size_t j = 0; j < N; ++j) {
        if (P.b[j] <= 0) continue;
        const double gr = P.b[j] - col[j] * invB;
        adam_m[j] = o.adam_beta1 * adam_m[j] + (1 - o.adam_beta1) * gr;
        adam_v[j] = o.adam_beta2 * adam_v[j] + (1 - o.adam_beta2) * gr * gr;
        g_new[j] += lr_t * (adam_m[j] / c1) / (std::sqrt(adam_v[j] / c2) + o.adam_eps);
      }
    }
    if (!std::isfinite(loss) || !all_finite(g_new)) {
      res.termination = Termination::NumericalFailure;
      res.message = "non-finite (or > 1e30) potential or loss at step " + std::to_string(t) +
                    " (step size too large?); returning the averaged iterate before it";
      break;
    }
    g.swap(g_new);
    switch (o.averaging) {
      case SdotAveraging::None: gbar = g; break;
      case SdotAveraging::Ema:
        for (size_t j = 0; j < N; ++j) gbar[j] = o.ema_decay * gbar[j] + (1 - o.ema_decay) * g[j];
        break;
      case SdotAveraging::Polyak:
        if (t < polyak_from) {
          if (o.polyak_prior == 0) gbar = g;
        } else {
          polyak_weight += 1;
          const double w = 1.0 / polyak_weight;
          for (size_t j = 0; j < N; ++j) gbar[j] += w * (g[j] - gbar[j]);
        }
        break;
    }
    loss_acc += loss;
    ++loss_n;

    const int64_t done = t + 1;
    const bool check = o.chi2_every > 0 && (done % o.chi2_every == 0 || done == o.steps);
    if (done % o.log_every == 0 || check) {
      HistoryRow row;
      row.step = done;
      row.loss = loss_acc / static_cast<double>(loss_n);
      row.lr = lr_t;
      row.epsilon = eps_t;
      loss_acc = 0;
      loss_n = 0;
      if (check) {
        const auto st = marginal_stats(P, gbar, eps, o.batch_size, o.chi2_repeats,
                                       mix_seed(ctx.seed, kTagChi2, static_cast<uint64_t>(done)), ctx, o.engine);
        row.chi2 = st.chi2;
        row.tv = st.tv;
        row.chi2_sd = st.chi2_sd;
        row.tv_bound = st.tv_bound;
        last_chi2 = st.chi2;
        last_chi2_sd = st.chi2_sd;
      }
      row.seconds = seconds();
      res.history.push_back(row);
      if (check && o.on_check) {
        res.steps = done;
        res.chi2 = last_chi2;
        res.g = centred(P, gbar);
        res.seconds = row.seconds;
        o.on_check(res);
      }
      if (check && done >= o.warmup_steps && o.chi2_threshold > 0 && *row.chi2 <= o.chi2_threshold) {
        res.termination = Termination::Converged;
        res.message = sdot_chi2_text(*row.chi2, row.chi2_sd, o.chi2_threshold) + " after " +
                      std::to_string(done) + " steps";
        t = done;
        break;
      }
    }
    if (progress.enabled()) {
      char status[96];
      if (last_chi2)
        std::snprintf(status, sizeof status, "chi2 %.4g  eps %.3g", *last_chi2, eps_t);
      else
        std::snprintf(status, sizeof status, "eps %.3g", eps_t);
      progress.update(done, status);
    }
  }
  res.steps = std::min<int64_t>(t, o.steps);
  if (res.termination == Termination::MaxSteps)
    res.message = "reached the step limit (" + std::to_string(o.steps) + ")" +
                  (last_chi2 ? ", " + sdot_chi2_text(*last_chi2, last_chi2_sd, o.chi2_threshold) : std::string());
  progress.finish(res.message);
  res.chi2 = last_chi2;
  res.g = centred(P, gbar);
  res.seconds = seconds();
  return res;
}

}  // namespace otgen
