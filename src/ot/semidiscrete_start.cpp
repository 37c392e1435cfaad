// The start of the semidiscrete fit: the initial potential (a given g0, zero, half-norm, the Gaussian
// fit, the coarse-to-fine start, or the best of them on one fresh batch) and the automatic step sizes
// and check cadence (docs/semidiscrete.md, "Automatic defaults").
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ot/semidiscrete_internal.h"
#include "otgen/core/error.h"
#include "otgen/core/rng.h"
#include "otgen/core/streams.h"
#include "otgen/ot/semidiscrete.h"

namespace otgen::sdot_detail {

namespace {

constexpr double kGapQuantile = 0.1;  // the gap quantile q of the lr scale (see Result::gap_scale)

// Over every rank when sharded.
int64_t support_size(const Prepared& P) {
  std::vector<int64_t> n{0};
  for (double w : P.b) n[0] += w > 0;
  if (P.sharded()) P.comm->allreduce_sum(n);
  return n[0];
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

}  // namespace

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

}  // namespace otgen::sdot_detail
