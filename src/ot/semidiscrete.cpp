// SemidiscreteOT: the stochastic fit of the dual potential (SPEC.md §1); its options are in
// semidiscrete_options.cpp.
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

constexpr double kGapQuantile = 0.1;  // the gap quantile q of the lr scale (see Result::gap_scale)

double step_size(const SemidiscreteOT::Options& o, double lr, double lr_final, int64_t t) {
  if (o.schedule == SdotSchedule::Constant || o.steps == 1) return lr;
  const double frac = static_cast<double>(t) / static_cast<double>(o.steps - 1);
  if (o.schedule == SdotSchedule::Linear) return lr + (lr_final - lr) * frac;
  return lr_final + 0.5 * (lr - lr_final) * (1.0 + std::cos(std::numbers::pi * frac));
}

// Over every rank when sharded.
int64_t support_size(const Prepared& P) {
  std::vector<int64_t> n{0};
  for (double w : P.b) n[0] += w > 0;
  if (P.sharded()) P.comm->allreduce_sum(n);
  return n[0];
}

// Sharded: the sums of every rank (in place); one process: as they are.
void sum_over_ranks(const Prepared& P, std::span<double> v) {
  if (P.sharded()) P.comm->allreduce_sum(v);
}

double half_norm(PointsView y, int64_t j) {
  double y2 = 0;
  for (int64_t c = 0; c < y.d; ++c) y2 += static_cast<double>(y.row(j)[c]) * y.row(j)[c];
  return 0.5 * y2;
}

// The Gaussian-fit potential: h_j = -|y_j - mu|^2 / (2 s), mu and s^2 = E_b|y - mu|^2 / d over the
// class (per-class potentials) or all the data; returned as g (g = h + |y|^2 / 2 for the half cost).
std::vector<double> gaussian_potential(const Prepared& P, PointsView y) {
  std::vector<double> g(static_cast<size_t>(P.N), 0.0), r2(static_cast<size_t>(P.N), 0.0);
  const int64_t K = P.per_class ? P.num_classes : 1;
  for (int64_t k = 0; k < K; ++k) {
    auto in = [&](int64_t j) { return P.b[j] > 0 && (!P.per_class || P.labels[j] == k); };
    std::vector<double> mu(static_cast<size_t>(y.d + 1), 0.0);  // sum b y, then the weight w
    double w = 0, var = 0;
    for (int64_t j = 0; j < P.N; ++j)
      if (in(j)) {
        w += P.b[j];
        for (int64_t c = 0; c < y.d; ++c) mu[c] += P.b[j] * y.row(j)[c];
      }
    mu[y.d] = w;
    sum_over_ranks(P, mu);
    w = mu[y.d];
    for (auto& m : mu) m /= w;
    for (int64_t j = 0; j < P.N; ++j)
      if (in(j)) {
        for (int64_t c = 0; c < y.d; ++c) r2[j] += (y.row(j)[c] - mu[c]) * (y.row(j)[c] - mu[c]);
        var += P.b[j] * r2[j];
      }
    sum_over_ranks(P, std::span<double>(&var, 1));
    const double s = std::sqrt(std::max(var / w / static_cast<double>(y.d), 1e-30));
    for (int64_t j = 0; j < P.N; ++j)
      if (in(j)) g[j] = (P.cost == SdotCost::SqEuclideanHalf ? half_norm(y, j) : 0.0) - r2[j] / (2 * s);
  }
  return g;
}

std::vector<double> candidate_potential(const Prepared& P, PointsView y, SdotInit init) {
  std::vector<double> g(static_cast<size_t>(P.N), 0.0);
  if (init == SdotInit::Gaussian) return gaussian_potential(P, y);
  if (init == SdotInit::HalfNorm && P.cost == SdotCost::SqEuclideanHalf)
    for (int64_t j = 0; j < P.N; ++j)
      if (P.b[j] > 0) g[j] = half_norm(y, j);
  return g;
}

// What the automatic defaults resolved to, and the starting potential.
struct Plan {
  double lr = 0, lr_final = 0;
  int64_t chi2_every = 0, chi2_repeats = 0;
  std::string init;
  double gap_scale = 0, lr_scale = 0;
  std::vector<double> g;
};

constexpr int64_t kMultiscaleMinPoints = 1024;  // auto init: coarse-to-fine from this support size ...
constexpr int64_t kMultiscaleMaxDim = 16;       // ... in at most this dimension
constexpr int64_t kMultiscaleFactor = 4;        // the coarse level has 1/4 of the points

// Coarse-to-fine start (low dimensions, where the smooth modes of g converge slowly: the Hessian's
// condition number grows like N^(2/d)). Fits N / 4 seeded support points (weights renormalised) to
// chi2 0.02 (recursively), then extends the coarse h = g - |y|^2 / 2 to every point to first order: the optimal map
// sends the cell of y_c, mean noise xbar_c, to y_c and x = -grad h, so h_j = h_c - <xbar_c, y_j - y_c>
// with c the nearest coarse point. Returns false (g untouched) when it does not apply.
bool multiscale_potential(const Prepared& P, PointsView y, const SemidiscreteOT::Options& o, const Context& ctx,
                          std::vector<double>& g) {
  if (P.sharded()) {
    if (P.num_classes == 0 && support_size(P) >= kMultiscaleMinPoints && P.d <= kMultiscaleMaxDim)
      require_unsharded(P, "--init auto on this data (a coarse-to-fine start; pass --init zero, half-norm or gaussian)");
    return false;
  }
  std::vector<int64_t> live;
  for (int64_t j = 0; j < P.N; ++j)
    if (P.b[j] > 0) live.push_back(j);
  const auto Ns = static_cast<int64_t>(live.size());
  if (P.num_classes > 0 || Ns < kMultiscaleMinPoints || P.d > kMultiscaleMaxDim) return false;
  Rng r(stream_key(ctx.seed, Stream::Coarse, static_cast<uint64_t>(Ns)));
  for (int64_t i = Ns - 1; i > 0; --i) std::swap(live[i], live[r.below(i + 1)]);  // seeded shuffle
  const int64_t M = Ns / kMultiscaleFactor;
  Points yc(M, P.d);
  std::vector<double> bc(static_cast<size_t>(M));
  double wsum = 0;
  for (int64_t c = 0; c < M; ++c) wsum += P.b[live[c]];
  for (int64_t c = 0; c < M; ++c) {
    std::copy_n(y.row(live[c]), P.d, yc.row(c));
    bc[c] = P.b[live[c]] / wsum;
  }
  SemidiscreteOT::Options co = o;
  co.lr.reset(), co.lr_final.reset(), co.chi2_every.reset(), co.chi2_repeats.reset();
  co.target_chi2 = 0.02, co.chi2_threshold = 0, co.steps = std::min<int64_t>(o.steps, 2000);
  co.init = SdotInit::Auto, co.optimizer = SdotOptimizer::Sgd, co.averaging = SdotAveraging::Poly;
  co.warmup_steps = 0, co.on_check = nullptr, co.log_every = co.steps;
  Context cctx = ctx;
  cctx.quiet = true;
  cctx.seed = stream_key(ctx.seed, Stream::Coarse);
  co.pca = 0;  // yc is in the matching space already; the noise keeps P's projection
  co.validate();
  const auto res = fit_in(co, yc, bc, cctx, {}, {}, P.proj);
  if (res.termination == Termination::NumericalFailure) return false;
  // Mean noise of each coarse cell, from 64 draws a point (in the matching space).
  SemidiscreteMap map = SemidiscreteOT(co).map(yc, bc, res);
  map.pca_basis = {};
  const Points x = draw_noise(P, stream_key(cctx.seed, Stream::CoarseCells), Stream::Noise, 0, 64 * M, cctx);
  const auto idx = sdot_assign(map, x, cctx, {}, o.engine);
  std::vector<double> xbar(static_cast<size_t>(M * P.d), 0.0), cnt(static_cast<size_t>(M), 0.0);
  for (int64_t i = 0; i < x.n; ++i) {
    cnt[idx[i]] += 1;
    for (int64_t k = 0; k < P.d; ++k) xbar[idx[i] * P.d + k] += x.row(i)[k];
  }
  // The nearest coarse point of every point: argmax_c <y_j, y_c> - |y_c|^2 / 2.
  const auto nc = squared_norms(yc);
  std::vector<float> hc(static_cast<size_t>(M));
  for (int64_t c = 0; c < M; ++c) hc[c] = -0.5f * nc[c];
  std::vector<int64_t> near(static_cast<size_t>(P.N));
  std::vector<float> val(static_cast<size_t>(P.N));
  row_argmax(ScoreProblem{y, yc, hc}, near, val, ctx, o.engine);
  const bool half = P.cost == SdotCost::SqEuclideanHalf;
  g.assign(static_cast<size_t>(P.N), 0.0);
  for (int64_t j = 0; j < P.N; ++j) {
    if (P.b[j] <= 0) continue;
    const int64_t c = near[j];
    double h = res.g[c] - (half ? 0.5 * nc[c] : 0.0);
    if (cnt[c] > 0)
      for (int64_t k = 0; k < P.d; ++k) h -= xbar[c * P.d + k] / cnt[c] * (y.row(j)[k] - yc.row(c)[k]);
    g[j] = h + (half ? half_norm(y, j) : 0.0);
  }
  return true;
}

// The starting potential: g0, the named candidate, or (auto) the candidate whose hard assignments of
// one fresh batch have the smallest chi2 estimate.
void choose_init(const Prepared& P, PointsView y, const SemidiscreteOT::Options& o, std::span<const float> g0,
                 const Context& ctx, Plan& plan) {
  const size_t N = static_cast<size_t>(P.N);
  if (!g0.empty()) {
    collectively(P.sharded() ? *P.comm : single_process(), [&] {
      require(g0.size() == N, "initial potential", "length " + std::to_string(g0.size()),
              "length N = " + std::to_string(P.N));
      require_finite(g0, "initial potential");
    });
    plan.g.assign(N, 0.0);
    for (size_t j = 0; j < N; ++j) plan.g[j] = P.b[j] > 0 ? g0[j] : 0.0;
    plan.init = "given";
    return;
  }
  if (o.init != SdotInit::Auto) {
    plan.g = candidate_potential(P, y, o.init);
    plan.init = to_string(o.init);
    return;
  }
  if (multiscale_potential(P, y, o, ctx, plan.g)) {
    plan.init = "multiscale";
    return;
  }
  const int64_t n = std::max<int64_t>(o.batch_size, 4096);
  double best = std::numeric_limits<double>::infinity();
  for (SdotInit c : {SdotInit::Zero, SdotInit::HalfNorm, SdotInit::Gaussian}) {
    if (c == SdotInit::HalfNorm && P.cost == SdotCost::Dot) continue;  // the same as zero
    auto g = candidate_potential(P, y, c);
    const auto st = marginal_stats(P, g, 0.0, n, 1, stream_key(ctx.seed, Stream::FitInit), ctx, o.engine);
    if (st.chi2 < best) best = st.chi2, plan.g = std::move(g), plan.init = to_string(c);
  }
}

// Resolves the automatic step sizes and check cadence (Options comments; docs/semidiscrete.md).
void resolve_auto(const Prepared& P, const SemidiscreteOT::Options& o, double eps, const Context& ctx, Plan& plan) {
  const double Ns = static_cast<double>(support_size(P));
  if (!o.lr) {
    const Points x = draw_noise(P, ctx.seed, Stream::FitInit, 1, std::max<int64_t>(o.batch_size, 4096), ctx);
    const auto xl = draw_classes(P, ctx.seed, Stream::FitInit, 1, x.n);
    auto gaps = score_gaps(P, x, xl, plan.g, ctx, o.engine);
    double q = 0;
    if (!gaps.empty()) {
      const size_t at = static_cast<size_t>(kGapQuantile * static_cast<double>(gaps.size() - 1));
      std::nth_element(gaps.begin(), gaps.begin() + static_cast<std::ptrdiff_t>(at), gaps.end());
      q = gaps[at];
    }
    // P(gap < q) = kGapQuantile ~ q * sum_j H_jj / 2: 1 / mean H_jj = q Ns / (2 kGapQuantile).
    plan.gap_scale = q;
    plan.lr_scale = q * Ns / (2 * kGapQuantile) + eps * Ns;
    if (!(plan.lr_scale > 0)) plan.lr_scale = 1.0;  // a single support point: any step works
    const double unit = o.optimizer == SdotOptimizer::Sgd ? plan.lr_scale : std::max(q, eps);
    plan.lr = 0.5 * (unit > 0 ? unit : 1.0);
    plan.lr_final = o.lr_final ? std::min(*o.lr_final, plan.lr) : plan.lr / 100;
  } else {
    plan.lr = *o.lr;
    plan.lr_final = o.lr_final ? *o.lr_final : std::min(0.05, *o.lr);
  }
  if (o.chi2_repeats) {
    plan.chi2_repeats = *o.chi2_repeats;
  } else if (o.target_chi2 > 0 && eps == 0) {
    const double M = std::sqrt(2 * Ns) / (0.25 * o.target_chi2);
    plan.chi2_repeats = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(M / static_cast<double>(o.batch_size))), 4, 256);
  } else {
    plan.chi2_repeats = 16;
  }
  plan.chi2_every = o.chi2_every ? *o.chi2_every : std::max<int64_t>(50, 4 * plan.chi2_repeats);
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
               : P.screened() ? "vnni"
                              : std::string(engine_path_name(argmax_path(P.d, o.engine)));
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
