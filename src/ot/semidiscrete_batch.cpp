// The fit's batch reductions: the semi-dual's value and column sums of a noise batch (hard and soft,
// sharded included) and the top-2 score gaps behind the automatic step size.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>

#include "ot/semidiscrete_internal.h"
#include "otgen/core/error.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/core/streams.h"

namespace otgen {
namespace sdot_detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

namespace {

// |x_i|^2 / 2 for the half cost, 0 for dot: the j-independent part of -c(x, y_j).
double row_shift(SdotCost cost, const float* x, int64_t d) {
  if (cost != SdotCost::SqEuclideanHalf) return 0.0;
  double s = 0;
  for (int64_t k = 0; k < d; ++k) s += static_cast<double>(x[k]) * x[k];
  return 0.5 * s;
}

// Soft rows of a group materialised in row chunks: adds sum_i s_ij and sum_i s_ij^2 (local columns,
// scattered to global) and returns sum_i lse_i. Deterministic for any thread count.
double soft_rows_exact(const Group& G, PointsView xk, std::span<const float> h, double eps, std::span<double> col_sum,
                       std::span<double> col_sum_sq, std::vector<double>* lse_out, const Context& ctx,
                       const ScoreOptions& engine) {
  const int64_t m = G.size();
  const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 22) / std::max<int64_t>(m, 1), 1, 256);
  std::vector<float> S(static_cast<size_t>(chunk * m));
  std::vector<double> rmax(static_cast<size_t>(chunk)), rsum(static_cast<size_t>(chunk));
  const double inv = 1.0 / eps;
  const int threads = ctx.resolved_threads();
  double total_lse = 0;
  for (int64_t i0 = 0; i0 < xk.n; i0 += chunk) {
    const int64_t r = std::min(chunk, xk.n - i0);
    const PointsView xr{xk.row(i0), r, xk.d};
    score_matrix(ScoreProblem{xr, G.y, h}, std::span<float>(S.data(), static_cast<size_t>(r * m)), ctx, engine);
#pragma omp parallel for num_threads(threads) schedule(static) if (r * m >= 32768)
    for (int64_t i = 0; i < r; ++i) {
      float* s = S.data() + i * m;
      auto logit = [&](int64_t c) { return std::isinf(h[c]) ? -kInf : s[c] * inv + G.log_b[c]; };
      double mx = -kInf;
      for (int64_t c = 0; c < m; ++c) mx = std::max(mx, logit(c));
      double sum = 0;
      for (int64_t c = 0; c < m; ++c) sum += std::exp(logit(c) - mx);
      for (int64_t c = 0; c < m; ++c) s[c] = static_cast<float>(std::exp(logit(c) - mx) / sum);  // s(x_i)_c
      rmax[i] = mx;
      rsum[i] = sum;
    }
    for (int64_t i = 0; i < r; ++i) {
      const double l = rmax[i] + std::log(rsum[i]);
      total_lse += l;
      if (lse_out) lse_out->push_back(l);
    }
#pragma omp parallel for num_threads(threads) schedule(static) if (r * m >= 32768)
    for (int64_t c = 0; c < m; ++c) {
      double a = 0, q = 0;
      for (int64_t i = 0; i < r; ++i) {
        const double p = S[i * m + c];
        a += p;
        q += p * p;
      }
      const int64_t j = G.global(c);
      col_sum[j] += a;
      if (!col_sum_sq.empty()) col_sum_sq[j] += q;
    }
  }
  return total_lse;
}

// A row's log-sum-exp over a column range, in double: (max, sum exp(logit - max)).
struct RowLse {
  double max = -kInf, sum = 0;
};

// Sharded soft rows (eps > 0) of the unconditional group, materialised in row chunks like
// soft_rows_exact: each rank's (max, sum) of every row over its columns are gathered and merged in rank
// order (the same on every rank), then each rank adds s_ij (and s_ij^2, s_ij rounded to float as in
// soft_rows_exact) for its own columns. Chunks
// are sized from the ranks' largest share, so every rank makes the same collectives. Returns sum_i lse_i.
double sharded_soft_rows(const Prepared& P, const Group& G, PointsView xk, std::span<const float> h, double eps,
                         std::span<double> col_sum, std::span<double> col_sum_sq, const Context& ctx,
                         const ScoreOptions& engine) {
  const int64_t m = G.size(), K = P.comm->size(), share = (P.N_total + K - 1) / K;
  const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 22) / std::max<int64_t>(share, 1), 1, 256);
  std::vector<float> S(static_cast<size_t>(chunk * m));
  std::vector<RowLse> mine(static_cast<size_t>(chunk));
  const double inv = 1.0 / eps;
  const int threads = ctx.resolved_threads();
  auto logit = [&](const float* s, int64_t c) { return std::isinf(h[c]) ? -kInf : s[c] * inv + G.log_b[c]; };
  double total_lse = 0;
  for (int64_t i0 = 0; i0 < xk.n; i0 += chunk) {
    const int64_t r = std::min(chunk, xk.n - i0);
    if (m > 0)
      score_matrix(ScoreProblem{PointsView{xk.row(i0), r, xk.d}, G.y, h}, std::span<float>(S.data(), static_cast<size_t>(r * m)),
                   ctx, engine);
#pragma omp parallel for num_threads(threads) schedule(static) if (r * m >= 32768)
    for (int64_t i = 0; i < r; ++i) {
      RowLse& q = mine[i];
      q = {};
      for (int64_t c = 0; c < m; ++c) q.max = std::max(q.max, logit(S.data() + i * m, c));
      if (q.max > -kInf)
        for (int64_t c = 0; c < m; ++c) q.sum += std::exp(logit(S.data() + i * m, c) - q.max);
    }
    const auto all = allgather<RowLse>(*P.comm, std::span<const RowLse>(mine.data(), static_cast<size_t>(r)));
    std::vector<double> lse(static_cast<size_t>(r));
    for (int64_t i = 0; i < r; ++i) {
      double mx = -kInf, sum = 0;
      for (int64_t k = 0; k < K; ++k) mx = std::max(mx, all[k * r + i].max);
      for (int64_t k = 0; k < K; ++k)
        if (all[k * r + i].max > -kInf) sum += all[k * r + i].sum * std::exp(all[k * r + i].max - mx);
      lse[i] = mx + std::log(sum);
      total_lse += lse[i];
    }
#pragma omp parallel for num_threads(threads) schedule(static) if (r * m >= 32768)
    for (int64_t c = 0; c < m; ++c) {
      double a = 0, q = 0;
      for (int64_t i = 0; i < r; ++i) {
        const double p = static_cast<float>(std::exp(logit(S.data() + i * m, c) - lse[i]));  // as soft_rows_exact
        a += p;
        q += p * p;
      }
      col_sum[G.global(c)] += a;
      if (!col_sum_sq.empty()) col_sum_sq[G.global(c)] += q;
    }
  }
  return total_lse;
}

}  // namespace

double accumulate_batch(const Prepared& P, PointsView x, std::span<const int64_t> x_labels, std::span<const double> g,
                        double eps, std::span<double> col_sum, std::span<double> col_sum_sq, const Context& ctx,
                        const ScoreOptions& engine) {
  const Split sp = split_rows(P, x, x_labels);
  double f_sum = 0;
  std::vector<float> h;
  for (size_t k = 0; k < P.groups.size(); ++k) {
    const PointsView xk = sp.view(k, x);
    if (xk.n == 0) continue;
    const Group& G = P.groups[k];
    P.group_h(k, g, h);
    double shift = 0;
    for (int64_t i = 0; i < xk.n; ++i) shift += row_shift(P.cost, xk.row(i), xk.d);
    const ScoreProblem prob{xk, G.y, h};
    if (eps <= 0) {
      std::vector<int64_t> idx(static_cast<size_t>(xk.n));
      std::vector<float> val(static_cast<size_t>(xk.n));
      group_argmax(P, G, xk, h, idx, val, ctx, engine);
      double vsum = 0;
      for (int64_t i = 0; i < xk.n; ++i) {
        const int64_t j = idx[i] - P.offset;  // this rank's column (sharded: when it holds it)
        if (j >= 0 && j < P.N) {
          col_sum[j] += 1.0;
          if (!col_sum_sq.empty()) col_sum_sq[j] += 1.0;
        }
        vsum += val[i];
      }
      f_sum += shift - vsum;
    } else if (P.sharded()) {
      f_sum += shift - eps * sharded_soft_rows(P, G, xk, h, eps, col_sum, col_sum_sq, ctx, engine);
    } else if (!col_sum_sq.empty()) {
      const double lse = soft_rows_exact(G, xk, h, eps, col_sum, col_sum_sq, nullptr, ctx, engine);
      f_sum += shift - eps * lse;
    } else {
      std::vector<double> cs(static_cast<size_t>(G.size()));
      std::vector<float> lse(static_cast<size_t>(xk.n));
      softmax_column_sums(prob, static_cast<float>(1.0 / eps), G.log_b, cs, lse, ctx, engine);
      for (int64_t c = 0; c < G.size(); ++c) col_sum[G.global(c)] += cs[c];
      double lsum = 0;
      for (float l : lse) lsum += l;
      f_sum += shift - eps * lsum;
    }
  }
  return f_sum;
}

namespace {

// Sharded (unconditional) score gaps: each rank's best two scores of every row, merged by the top-k rule.
std::vector<double> sharded_gaps(const Prepared& P, PointsView x, std::span<const double> g, const Context& ctx,
                                 const ScoreOptions& engine) {
  const Group& G = P.groups[0];
  std::vector<int64_t> support{0};
  for (int64_t c = 0; c < G.size(); ++c) support[0] += P.b[G.global(c)] > 0;
  const int64_t mine = std::min<int64_t>(2, support[0]);
  P.comm->allreduce_sum(support);
  if (x.n == 0 || support[0] < 2) return {};
  std::vector<float> h;
  P.group_h(0, g, h);
  std::vector<TopkEntry> best(static_cast<size_t>(2 * x.n));  // empty entries where this rank has < 2
  if (mine > 0) {
    std::vector<int64_t> idx(static_cast<size_t>(mine * x.n));
    std::vector<float> val(idx.size());
    row_topk(ScoreProblem{x, G.y, h}, mine, idx, val, ctx, engine);
    for (int64_t i = 0; i < x.n; ++i)
      for (int64_t t = 0; t < mine; ++t) best[2 * i + t] = {val[i * mine + t], P.offset + G.global(idx[i * mine + t])};
  }
  const auto all = allgather<TopkEntry>(*P.comm, best);
  const int R = P.comm->size();
  std::vector<double> gaps(static_cast<size_t>(x.n));
  std::vector<TopkEntry> parts(static_cast<size_t>(2 * R)), top(2);
  for (int64_t i = 0; i < x.n; ++i) {
    for (int r = 0; r < R; ++r) std::copy_n(all.begin() + (r * x.n + i) * 2, 2, parts.begin() + 2 * r);
    merge_topk(parts, 2, top);
    gaps[i] = static_cast<double>(top[0].value) - top[1].value;
  }
  return gaps;
}

}  // namespace

std::vector<double> score_gaps(const Prepared& P, PointsView x, std::span<const int64_t> x_labels,
                               std::span<const double> g, const Context& ctx, const ScoreOptions& engine) {
  if (P.sharded()) return sharded_gaps(P, x, g, ctx, engine);
  const Split sp = split_rows(P, x, x_labels);
  std::vector<double> gaps;
  std::vector<float> h;
  for (size_t k = 0; k < P.groups.size(); ++k) {
    const PointsView xk = sp.view(k, x);
    const Group& G = P.groups[k];
    int64_t support = 0;
    for (int64_t c = 0; c < G.size(); ++c) support += P.b[G.global(c)] > 0;
    if (xk.n == 0 || support < 2) continue;
    P.group_h(k, g, h);
    std::vector<int64_t> idx(static_cast<size_t>(2 * xk.n));
    std::vector<float> val(static_cast<size_t>(2 * xk.n));
    row_topk(ScoreProblem{xk, G.y, h}, 2, idx, val, ctx, engine);
    for (int64_t i = 0; i < xk.n; ++i) gaps.push_back(static_cast<double>(val[2 * i]) - val[2 * i + 1]);
  }
  return gaps;
}

}  // namespace sdot_detail

}  // namespace otgen
