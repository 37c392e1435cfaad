// SemidiscreteOT: the stochastic fit of the dual potential (SPEC.md §1): the ascent, optimiser,
// averaging, checks and stopping rules. Its start (initial potential, automatic step sizes) is in
// semidiscrete_start.cpp, its options in semidiscrete_options.cpp.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <string>

#include "ot/semidiscrete_internal.h"
#include "otgen/core/error.h"
#include "otgen/ot/pca.h"
#include "otgen/core/progress.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/core/streams.h"

namespace otgen {

using namespace sdot_detail;

SemidiscreteOT::SemidiscreteOT() : SemidiscreteOT(Options{}) {}

SemidiscreteOT::SemidiscreteOT(Options options) : options_(std::move(options)) { options_.validate(); }

namespace {

double step_size(const SemidiscreteOT::Options& o, double lr, double lr_final, int64_t t) {
  if (o.schedule == SdotSchedule::Constant || o.steps == 1) return lr;
  const double frac = static_cast<double>(t) / static_cast<double>(o.steps - 1);
  if (o.schedule == SdotSchedule::Linear) return lr + (lr_final - lr) * frac;
  return lr_final + 0.5 * (lr - lr_final) * (1.0 + std::cos(std::numbers::pi * frac));
}

// Centres g: mean 0 over the support, per class for per-class potentials; masked entries are 0.
// Sharded: the whole potential (every rank's g gathered, centred in the single-process order).
std::vector<float> centred(const Prepared& P, const std::vector<double>& g_local) {
  const std::vector<double> g = gather_points(P, g_local);
  const std::span<const double> b = P.all_b();
  std::vector<float> out(g.size(), 0.0f);
  const int64_t K = P.per_class ? P.num_classes : 1, N = static_cast<int64_t>(g.size());
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    int64_t n = 0;
    for (int64_t j = 0; j < N; ++j)
      if (b[j] > 0 && (!P.per_class || P.labels[j] == k)) s += g[j], ++n;
    const double mean = n > 0 ? s / static_cast<double>(n) : 0.0;
    for (int64_t j = 0; j < N; ++j)
      if (b[j] > 0 && (!P.per_class || P.labels[j] == k)) out[j] = static_cast<float>(g[j] - mean);
  }
  return out;
}

// Whether any rank is out of time (so all stop at the same step).
bool out_of_time_everywhere(const Prepared& P, bool mine) {
  std::vector<double> v{mine ? 1.0 : 0.0};
  sum_over_ranks(P, v);
  return v[0] > 0;
}

// Finite and small enough to stay finite as float scores (|g| <= 1e30).
bool all_finite(const std::vector<double>& v) {
  for (double a : v)
    if (!(std::abs(a) <= 1e30)) return false;
  return true;
}

// The averaged iterate after step t (0-based) moved the iterate to g.
struct Averager {
  const SemidiscreteOT::Options& o;
  int64_t polyak_from = 0;
  double polyak_weight = 0;
  void update(int64_t t, const std::vector<double>& g, std::vector<double>& gbar) {
    const size_t N = g.size();
    switch (o.averaging) {
      case SdotAveraging::None: gbar = g; break;
      case SdotAveraging::Ema:
        for (size_t j = 0; j < N; ++j) gbar[j] = o.ema_decay * gbar[j] + (1 - o.ema_decay) * g[j];
        break;
      case SdotAveraging::Poly: {
        const double w = (1 + o.poly_gamma) / (static_cast<double>(t) + 1 + o.poly_gamma);
        for (size_t j = 0; j < N; ++j) gbar[j] += w * (g[j] - gbar[j]);
        break;
      }
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
  }
};

// The optimiser: one SGD or Adam ascent step on F into g_new, grad_j = b_j - col_j / B (0 on masked
// points); Adam keeps its moment estimates here.
struct Optimiser {
  const SemidiscreteOT::Options& o;
  std::vector<double> adam_m, adam_v;

  void step(const Prepared& P, int64_t t, double lr_t, const std::vector<double>& col, std::vector<double>& g_new) {
    const double invB = 1.0 / static_cast<double>(o.batch_size);
    const size_t N = g_new.size();
    if (o.optimizer == SdotOptimizer::Sgd) {
      for (size_t j = 0; j < N; ++j)
        if (P.b[j] > 0) g_new[j] += lr_t * (P.b[j] - col[j] * invB);
      return;
    }
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
};

// The gradient: the batch of step t (drawn by t alone) and its column sums into col, so that
// grad_j = b_j - col_j / B; returns sum_i f_g(x_i) (the c-transform, for the loss).
double batch_gradient(const Prepared& P, const SemidiscreteOT::Options& o, const Context& ctx,
                      const std::vector<double>& g, int64_t t, double eps_t, std::vector<double>& col) {
  const Points x = draw_noise(P, ctx.seed, Stream::Noise, static_cast<uint64_t>(t), o.batch_size, ctx);
  const auto xl = draw_classes(P, ctx.seed, Stream::Noise, static_cast<uint64_t>(t), o.batch_size);
  std::fill(col.begin(), col.end(), 0.0);
  return accumulate_batch(P, x, xl, g, eps_t, col, {}, ctx, o.engine);
}

// The iterates of the stochastic ascent and one step of it: gradient, optimiser, averager.
struct Ascent {
  const SemidiscreteOT::Options& o;
  const Prepared& P;
  const Context& ctx;
  std::vector<double> g, gbar, col;  // the iterate, the returned (averaged) one, the batch's column sums
  Optimiser opt;
  Averager avg;

  // g: the starting potential; warm: it is a given g0 (Polyak may count it as polyak_prior iterates).
  Ascent(const SemidiscreteOT::Options& o_, const Prepared& P_, const Context& ctx_, std::vector<double> g0, bool warm)
      : o(o_), P(P_), ctx(ctx_), g(std::move(g0)), gbar(g), col(g.size()),
        opt{o, std::vector<double>(g.size(), 0.0), std::vector<double>(g.size(), 0.0)},
        avg{o, static_cast<int64_t>(std::floor(o.polyak_start * static_cast<double>(o.steps))),
            o.averaging == SdotAveraging::Polyak ? o.polyak_prior : 0.0} {
    require(avg.polyak_weight == 0 || warm, "polyak_prior", o.polyak_prior,
            "0 without a warm start (it weighs the initial potential g0 in the average)");
  }

  // Step t at (eps_t, lr_t): the minibatch semi-dual F of the iterate before it, or empty (nothing
  // moved) when the loss or the new iterate is not finite on some rank.
  std::optional<double> step(int64_t t, double eps_t, double lr_t) {
    const double f_sum = batch_gradient(P, o, ctx, g, t, eps_t, col);
    std::vector<double> g_new = g;
    opt.step(P, t, lr_t, col, g_new);
    // <b, g> and whether the step stays finite, over every rank when sharded (one small allreduce).
    std::vector<double> dot_bad{0.0, all_finite(g_new) ? 0.0 : 1.0};
    for (size_t j = 0; j < g.size(); ++j) dot_bad[0] += P.b[j] * g[j];
    sum_over_ranks(P, dot_bad);
    const double loss = f_sum / static_cast<double>(o.batch_size) + dot_bad[0];
    if (!std::isfinite(loss) || dot_bad[1] > 0) return std::nullopt;
    g.swap(g_new);
    avg.update(t, g, gbar);
    return loss;
  }
};

// A chi2 check of gbar into row (chi2, sd, TV); sd at eps > 0 from the spread of the per-batch
// estimates (the pooled estimate's sd is about theirs / sqrt(R)).
void check_into(const Prepared& P, const std::vector<double>& gbar, double eps, const SemidiscreteOT::Options& o,
                int64_t repeats, uint64_t seed, const Context& ctx, SemidiscreteOT::HistoryRow& row) {
  std::vector<double> per;
  const bool spread = eps > 0 && repeats >= 2;
  const auto st = marginal_stats(P, gbar, eps, o.batch_size, repeats, seed, ctx, o.engine, spread ? &per : nullptr);
  row.chi2 = st.chi2;
  row.tv = st.tv;
  row.tv_bound = st.tv_bound;
  row.chi2_sd = st.chi2_sd;
  if (spread) {
    double m = 0, v = 0;
    for (double c : per) m += c / static_cast<double>(per.size());
    for (double c : per) v += (c - m) * (c - m) / static_cast<double>(per.size() - 1);
    row.chi2_sd = std::sqrt(v / static_cast<double>(per.size()));
  }
}

// A check that meets the target is confirmed on as many fresh draws again, and the row holds the mean
// of the two independent estimates (sd / sqrt 2): the run stops only if that still meets it. Without
// this, stopping at the first of many checks to fall below the bound picks the low draws (a fresh
// check then reads above the target more often than the bound's 2.3%).
void confirm(const Prepared& P, const std::vector<double>& gbar, double eps, const SemidiscreteOT::Options& o,
             int64_t repeats, const Context& ctx, SemidiscreteOT::HistoryRow& row) {
  SemidiscreteOT::HistoryRow again;
  check_into(P, gbar, eps, o, repeats, stream_key(ctx.seed, Stream::Confirm, static_cast<uint64_t>(row.step)), ctx, again);
  row.chi2 = 0.5 * (*row.chi2 + *again.chi2);
  row.tv = 0.5 * (*row.tv + *again.tv);
  row.chi2_sd = 0.5 * std::hypot(row.chi2_sd.value_or(0.0), again.chi2_sd.value_or(0.0));
  if (row.tv_bound) row.tv_bound = 0.5 * std::sqrt(std::max(0.0, *row.chi2 + 2 * *row.chi2_sd));
}

// The stopping rule met by a check (after the warm-up), or empty.
std::string check_stop(const SemidiscreteOT::Options& o, const SemidiscreteOT::HistoryRow& row, std::string& message) {
  if (row.step < o.warmup_steps || !row.chi2) return {};
  const double c = *row.chi2, sd = row.chi2_sd.value_or(0.0);
  if (o.target_chi2 > 0 && row.chi2_sd && c + 2 * sd <= o.target_chi2) {
    message = "chi2 + 2 sd = " + to_text(c) + " + 2 * " + to_text(sd) + " <= target " + to_text(o.target_chi2) +
              " after " + std::to_string(row.step) + " steps";
    return "target_chi2";
  }
  if (o.chi2_threshold > 0 && c <= o.chi2_threshold) {
    message = "chi2 = " + to_text(c) + " <= " + to_text(o.chi2_threshold) + " after " + std::to_string(row.step) + " steps";
    return "chi2_threshold";
  }
  return {};
}

// Seconds since construction (the fit's clock: history rows, the time limit, the result).
struct Stopwatch {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
};

// The monitor: the history (a row every history_every() steps and at every chi2 check, with the mean loss
// since the last row), the checks of the averaged iterate, on_check, and the stopping rule a check meets.
struct Monitor {
  const SemidiscreteOT::Options& o;
  const Prepared& P;
  const Context& ctx;
  const Plan& plan;
  double eps;
  const Stopwatch& clock;
  SemidiscreteOT::Result& res;
  double loss_acc = 0;
  int64_t loss_n = 0;
  std::optional<double> last_chi2, last_chi2_sd;

  Monitor(const SemidiscreteOT::Options& o_, const Prepared& P_, const Context& ctx_, const Plan& plan_, double eps_,
          const Stopwatch& clock_, SemidiscreteOT::Result& res_)
      : o(o_), P(P_), ctx(ctx_), plan(plan_), eps(eps_), clock(clock_), res(res_) {}

  // Whether gbar is checked after `done` steps (every chi2_every, at the last step and out of time).
  bool check_due(int64_t done, bool out_of_time) const {
    return plan.chi2_every > 0 && (done % plan.chi2_every == 0 || done == o.steps || out_of_time);
  }

  // After `done` steps, the last of loss (lr_t, eps_t): the history row when due, the check when
  // `check`; returns the stopping rule the check met, or empty.
  std::string record(int64_t done, double loss, double lr_t, double eps_t, bool check, const std::vector<double>& gbar) {
    loss_acc += loss;
    ++loss_n;
    if (done % o.history_every() != 0 && !check) return {};
    SemidiscreteOT::HistoryRow row;
    row.step = done;
    row.loss = loss_acc / static_cast<double>(loss_n);
    row.lr = lr_t;
    row.epsilon = eps_t;
    loss_acc = 0;
    loss_n = 0;
    if (check) run_check(gbar, row);
    row.seconds = clock.seconds();
    res.history.push_back(row);
    if (!check) return {};
    if (o.on_check) {
      res.steps = done;
      res.chi2 = last_chi2;
      res.g = centred(P, gbar);
      res.seconds = row.seconds;
      o.on_check(res);
    }
    return check_stop(o, row, res.message);
  }

  // The chi2 check of gbar into row, confirmed on fresh draws when it meets the target.
  void run_check(const std::vector<double>& gbar, SemidiscreteOT::HistoryRow& row) {
    check_into(P, gbar, eps, o, plan.chi2_repeats, stream_key(ctx.seed, Stream::Chi2, static_cast<uint64_t>(row.step)), ctx,
               row);
    std::string unused;
    if (check_stop(o, row, unused) == "target_chi2") confirm(P, gbar, eps, o, plan.chi2_repeats, ctx, row);
    last_chi2 = row.chi2;
    last_chi2_sd = row.chi2_sd;
  }
};

// Whether the run stops after `done` steps, and res says why: the rule a check met, else the time
// limit, else an interrupt (Context::should_stop, asked only when neither of the others holds).
bool stops(const std::string& rule, bool out_of_time, int64_t done, const Monitor& m, const Context& ctx,
           SemidiscreteOT::Result& res) {
  auto chi2_tail = [&] { return m.last_chi2 ? ", chi2 = " + to_text(*m.last_chi2) : std::string(); };
  if (!rule.empty()) {
    res.termination = Termination::Converged;
    res.stopped_by = rule;
    return true;
  }
  if (out_of_time) {
    res.stopped_by = "time_limit";
    res.message = "reached the time limit (" + to_text(m.o.time_limit) + " s) after " + std::to_string(done) +
                  " steps" + chi2_tail();
    return true;
  }
  if (ctx.should_stop && ctx.should_stop()) {
    res.termination = Termination::Interrupted;
    res.stopped_by = "interrupted";
    res.message = "interrupted after " + std::to_string(done) + " steps" + chi2_tail();
    return true;
  }
  return false;
}

void fail_numerically(int64_t t, SemidiscreteOT::Result& res) {
  res.termination = Termination::NumericalFailure;
  res.stopped_by = "numerical_failure";
  res.message = "non-finite (or > 1e30) potential or loss at step " + std::to_string(t) +
                " (step size too large?); returning the averaged iterate before it";
}

void show_progress(Progress& progress, int64_t done, double eps_t, std::optional<double> chi2) {
  if (!progress.enabled()) return;
  if (chi2) progress.set_metric("chi2", *chi2);
  char status[48];
  std::snprintf(status, sizeof status, "eps %.3g", eps_t);
  progress.update(done, status);
}

// eps_t: eps + delta * (1 - t / warmup_steps) during the warm-up, then eps.
double warmup_epsilon(const SemidiscreteOT::Options& o, double eps, double delta, int64_t t) {
  if (t >= o.warmup_steps) return eps;
  return eps + delta * (1.0 - static_cast<double>(t) / static_cast<double>(o.warmup_steps));
}

// What a fit starts from: the prepared problem, the absolute eps and warm-up delta, the resolved
// defaults with the starting potential, and the result's header fields.
struct FitStart {
  Prepared P;
  double eps = 0, delta = 0;
  Plan plan;
  SemidiscreteOT::Result res;
};

FitStart start_fit(const SemidiscreteOT::Options& o, PointsView y, std::span<const double> b, const Context& ctx,
                   std::span<const int64_t> labels, std::span<const float> g0, std::shared_ptr<const Projection> proj) {
  // The screens (int8 lattice, bf16 columns) serve hard (eps = 0) steps and checks only.
  FitStart s;
  s.P = prepare(y, b, o.cost, labels, o.class_penalty, o.epsilon == 0 ? &ctx : nullptr, o.engine, ctx.communicator());
  const Prepared& P = s.P;
  SemidiscreteOT::Result& res = s.res;
  s.P.proj = proj;
  if (proj) res.pca_basis = proj->U, res.pca = proj->K;
  s.eps = o.epsilon, s.delta = o.warmup_delta;
  if (o.relative_epsilon && (o.epsilon > 0 || o.warmup_delta > 0)) {
    require_unsharded(P, "--relative-epsilon");
    const double sd = reference_cost_std(y, P.b, o.cost, stream_key(ctx.seed, Stream::Reference), ctx, o.reference_draws,
                                         o.reference_points, proj.get());
    res.reference_cost_std = sd;
    s.eps *= sd;
    s.delta *= sd;
  }
  res.epsilon = s.eps;
  res.int8_screen = P.screened();
  res.engine = o.epsilon > 0 ? "fp32"  // soft steps: softmax sums in float32
                              : std::string(P.argmax_path_name(o.engine));
  choose_init(P, y, o, g0, ctx, s.plan);
  resolve_auto(P, o, s.eps, ctx, s.plan);
  res.lr = s.plan.lr, res.lr_final = s.plan.lr_final, res.init = s.plan.init;
  res.chi2_every = s.plan.chi2_every, res.chi2_repeats = s.plan.chi2_repeats;
  res.gap_scale = s.plan.gap_scale, res.lr_scale = s.plan.lr_scale;
  return s;
}

// The result after `steps` steps: the step-limit message when nothing else stopped the run, the last
// chi2, the averaged potential centred.
SemidiscreteOT::Result finish(FitStart& s, const Monitor& m, int64_t steps, const std::vector<double>& gbar,
                              Progress& progress, const Stopwatch& clock) {
  SemidiscreteOT::Result& res = s.res;
  const SemidiscreteOT::Options& o = m.o;
  res.steps = steps;
  if (res.stopped_by == "steps")
    res.message = "reached the step limit (" + std::to_string(o.steps) + ")" +
                  (m.last_chi2 ? ", " + sdot_chi2_text(*m.last_chi2, m.last_chi2_sd, o.chi2_threshold) : std::string());
  progress.finish(res.message);
  res.chi2 = m.last_chi2;
  res.g = centred(s.P, gbar);
  res.seconds = clock.seconds();
  return std::move(res);
}

}  // namespace

SemidiscreteOT::Result SemidiscreteOT::fit(PointsView y, std::span<const double> b, const Context& ctx,
                                           std::span<const int64_t> labels, std::span<const float> g0) const {
  ctx.validate();
  if (options_.pca == 0) return fit_in(options_, y, b, ctx, labels, g0, nullptr);
  require_unsharded(ctx.communicator(), "--pca");
  // The data checked as the fit checks them, then the basis of their (weighted) covariance.
  (void)prepare(y, b, options_.cost, labels, options_.class_penalty);
  const PcaBasis basis = pca_basis(y, b, options_.pca, "pca");
  auto proj = std::make_shared<Projection>();
  proj->D = y.d, proj->K = basis.dim;
  proj->U.assign(basis.components.begin(), basis.components.end());
  const Points z = proj->apply(y, ctx);
  return fit_in(options_, z, b, ctx, labels, g0, std::move(proj));
}

namespace sdot_detail {

SemidiscreteOT::Result fit_in(const SemidiscreteOT::Options& o, PointsView y, std::span<const double> b,
                              const Context& ctx, std::span<const int64_t> labels, std::span<const float> g0,
                              std::shared_ptr<const Projection> proj) {
  const Stopwatch clock;
  FitStart s = start_fit(o, y, b, ctx, labels, g0, std::move(proj));
  Ascent ascent(o, s.P, ctx, std::move(s.plan.g), !g0.empty());
  Monitor monitor(o, s.P, ctx, s.plan, s.eps, clock, s.res);
  Progress progress("sdot fit", o.steps, ctx);
  int64_t done = 0;
  for (int64_t t = 0; t < o.steps; ++t) {
    const double eps_t = warmup_epsilon(o, s.eps, s.delta, t), lr_t = step_size(o, s.plan.lr, s.plan.lr_final, t);
    const std::optional<double> loss = ascent.step(t, eps_t, lr_t);
    if (!loss) {
      fail_numerically(t, s.res);
      break;
    }
    done = t + 1;
    const bool out_of_time = o.time_limit > 0 && out_of_time_everywhere(s.P, clock.seconds() >= o.time_limit);
    const bool check = monitor.check_due(done, out_of_time);
    const std::string rule = monitor.record(done, *loss, lr_t, eps_t, check, ascent.gbar);
    if (stops(rule, out_of_time, done, monitor, ctx, s.res)) break;
    show_progress(progress, done, eps_t, check ? monitor.last_chi2 : std::nullopt);
  }
  return finish(s, monitor, done, ascent.gbar, progress, clock);
}

}  // namespace sdot_detail

}  // namespace otgen
