// Semidiscrete maps: target preparation (groups), noise, batched reductions through the score engine,
// assignment / sampling / top-k (the marginal checks are in semidiscrete_check.cpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>

#include "ot/semidiscrete_internal.h"
#include "otgen/error.h"
#include "otgen/rng.h"
#include "otgen/semidiscrete.h"
#include "otgen/streams.h"

namespace otgen {

namespace sdot_detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kNegInfF = -std::numeric_limits<float>::infinity();

// Stream tags of the counter-based RNG (one per use, so draws never collide).

// shard: y and b are one rank's rows of N_total (the weight sum is checked over all ranks by the caller).
Prepared prepare_groups(PointsView y, std::span<const double> b, SdotCost cost, std::span<const int64_t> labels,
                        double class_penalty, int64_t N_total, bool shard, int64_t first = 0);

// The sharded preparation: offsets from every rank's row count, local checks agreed by all ranks,
// the weight sum over all ranks.
Prepared prepare_shard(PointsView y, std::span<const double> b, SdotCost cost, std::span<const int64_t> labels,
                       double class_penalty, const Communicator& comm) {
  const std::vector<int64_t> counts = allgather<int64_t>(comm, std::span<const int64_t>(&y.n, 1));
  int64_t offset = 0, total = 0;
  for (int r = 0; r < comm.size(); ++r) offset += r < comm.rank() ? counts[r] : 0, total += counts[r];
  Prepared P;
  collectively(comm, [&] {
    require(total >= 1, "data", "n = 0", "at least one target point");
    require(labels.empty(), "labels", "given under mpirun with " + std::to_string(comm.size()) + " ranks",
            "unconditional data (sharded conditional OT is not built yet; run it on one process)");
    P = prepare_groups(y, b, cost, labels, class_penalty, total, /*shard=*/true, offset);
  });
  std::vector<double> s{0.0};
  for (double w : P.b) s[0] += w;
  comm.allreduce_sum(s);
  collectively(comm, [&] {
    require(std::abs(s[0] - 1.0) <= 1e-6, "weights", "sum " + to_text(s[0]),
            "weights summing to 1 within 1e-6 (otgen does not renormalise them)");
  });
  P.comm = &comm;
  P.offset = offset;
  P.N_total = total;
  P.b_all = allgather<double>(comm, P.b);
  return P;
}

}  // namespace

void require_unsharded(const Prepared& P, const std::string& what) {
  if (P.sharded())
    throw CollectiveError(what + " is not sharded yet: run it on one process (without mpirun, or mpirun -np 1)");
}

std::vector<double> gather_points(const Prepared& P, std::span<const double> local) {
  if (!P.sharded()) return {local.begin(), local.end()};
  return allgather<double>(*P.comm, local);
}

void Prepared::group_h(size_t k, std::span<const double> g, std::vector<float>& h) const {
  const Group& G = groups[k];
  h.resize(static_cast<size_t>(G.size()));
  for (int64_t c = 0; c < G.size(); ++c) {
    const int64_t j = G.global(c);
    if (b[j] <= 0) {
      h[c] = kNegInfF;
      continue;
    }
    double v = g[j] - G.y_shift[c];
    if (!G.penalty.empty()) v += G.penalty[c];
    h[c] = static_cast<float>(v);
  }
}

Prepared prepare(PointsView y, std::span<const double> b, SdotCost cost, std::span<const int64_t> labels,
                 double class_penalty, const Context* screen_ctx, const ScoreOptions& engine,
                 const Communicator& comm) {
  Prepared P = comm.size() > 1 ? prepare_shard(y, b, cost, labels, class_penalty, comm)
                               : prepare_groups(y, b, cost, labels, class_penalty, y.n, /*shard=*/false);
  if (!P.sharded()) P.N_total = P.N;
  P.y_data = y.data;
  P.b_data = b.data();
  P.labels_data = labels.data();
  P.class_penalty = class_penalty;
  if (screen_ctx) {
    std::shared_ptr<const LatticeColumns> shared;  // finite beta: every group scans all of y
    std::shared_ptr<const Bf16Columns> shared16;
    const bool bf16 = argmax_path(y.d, engine) == EnginePath::Avx512Bf16;
    for (Group& G : P.groups) {
      const bool whole = G.y.data == y.data;
      if (engine.uses_int8_screen()) {
        if (whole && !shared) shared = LatticeColumns::build(y, *screen_ctx);
        G.lattice = whole ? shared : LatticeColumns::build(G.y, *screen_ctx);
      }
      if (G.lattice || !bf16) continue;
      if (whole && !shared16) shared16 = Bf16Columns::build(y, *screen_ctx);
      G.bf16 = whole ? shared16 : Bf16Columns::build(G.y, *screen_ctx);
    }
  }
  if (P.sharded()) {  // screen only if every rank holding columns can: the merge compares exact scores
    P.groups[0].bf16.reset();  // the sharded merge knows the int8 screen and fp32 only
    std::vector<int64_t> unscreened{screen_ctx && (P.groups[0].size() == 0 || P.groups[0].lattice) ? 0 : 1};
    comm.allreduce_sum(unscreened);
    if (unscreened[0] > 0) P.groups[0].lattice.reset();
  }
  return P;
}

namespace {

// The ranks' argmax partials of one unconditional group, merged: global indices and values.
// With the int8 screen (agreed by every rank in prepare), each rank's screened argmax is re-scored
// exactly as the screen does (h_j + sum_k x_ik y_jk in double, in k order) and the ranks' exact
// scores are merged: the argmax in double of the whole, as one screened process finds it.
void sharded_argmax(const Prepared& P, const Group& G, PointsView x, std::span<const float> h,
                    std::span<int64_t> index, std::span<float> value, const Context& ctx, const ScoreOptions& engine) {
  std::vector<double> v(static_cast<size_t>(x.n), -kInf);
  std::fill(index.begin(), index.end(), int64_t{-1});
  bool support = false;
  for (float hj : h) support = support || !std::isinf(hj);
  if (support && G.lattice && engine.int8_screen) {
    std::vector<float> val(static_cast<size_t>(x.n));
    row_argmax(ScoreProblem{x, G.y, h}, *G.lattice, index, val, ctx);
    for (int64_t i = 0; i < x.n; ++i) {
      const float* xi = x.row(i);
      const float* yj = G.y.row(index[i]);
      double sc = h[index[i]];
      for (int64_t k = 0; k < x.d; ++k) sc += static_cast<double>(xi[k]) * yj[k];
      v[i] = sc;
      index[i] += P.offset;
    }
  } else if (G.size() > 0) {
    std::vector<ArgmaxPartial<float>> part(static_cast<size_t>(x.n));
    row_argmax_partials(ScoreProblem{x, G.y, h, static_cast<uint64_t>(P.offset)}, part, ctx, engine);
    for (size_t i = 0; i < part.size(); ++i) v[i] = part[i].value, index[i] = part[i].index;
  }
  P.comm->allreduce_argmax(v, index);
  for (int64_t i = 0; i < x.n; ++i) value[i] = static_cast<float>(v[i]);  // float scores: exact; screened: rounded as one process
}

}  // namespace

void group_argmax(const Prepared& P, const Group& G, PointsView x, std::span<const float> h,
                  std::span<int64_t> index, std::span<float> value, const Context& ctx, const ScoreOptions& engine) {
  if (P.sharded()) return sharded_argmax(P, G, x, h, index, value, ctx, engine);
  const ScoreProblem prob{x, G.y, h};
  if (G.lattice && engine.uses_int8_screen())
    row_argmax(prob, *G.lattice, index, value, ctx);
  else if (G.bf16 && argmax_path(x.d, engine) == EnginePath::Avx512Bf16)
    row_argmax(prob, *G.bf16, index, value, ctx);
  else
    row_argmax(prob, index, value, ctx, engine);
  for (auto& j : index) j = G.global(j);
}

namespace {

Prepared prepare_groups(PointsView y, std::span<const double> b, SdotCost cost, std::span<const int64_t> labels,
                        double class_penalty, int64_t N_total, bool shard, int64_t first) {
  require(shard || y.n >= 1, "data", "n = " + std::to_string(y.n), "at least one target point");
  require(y.d >= 1, "data", "d = " + std::to_string(y.d), "d >= 1");
  require_finite(y, "data", first);
  Prepared P;
  P.N = y.n;
  P.d = y.d;
  P.cost = cost;
  if (b.empty()) {
    P.b.assign(static_cast<size_t>(y.n), 1.0 / static_cast<double>(N_total));
  } else {
    require(static_cast<int64_t>(b.size()) == y.n, "weights", "length " + std::to_string(b.size()),
            "length N = " + std::to_string(y.n) + " (one weight per data point)");
    require_finite(b, "weights", first);
    double s = 0;
    for (size_t j = 0; j < b.size(); ++j) {
      if (b[j] < 0)
        fail_argument("weights", to_text(b[j]) + " at index " + std::to_string(first + static_cast<int64_t>(j)),
                      "non-negative weights");
      s += b[j];
    }
    require(shard || std::abs(s - 1.0) <= 1e-6, "weights", "sum " + to_text(s),
            "weights summing to 1 within 1e-6 (otgen does not renormalise them)");
    P.b.assign(b.begin(), b.end());
  }
  require(class_penalty > 0 && !std::isnan(class_penalty), "class_penalty", class_penalty,
          "a positive number (infinity = one potential per class)");
  const auto half_norms = squared_norms(y);
  auto shift_of = [&](int64_t j) { return cost == SdotCost::SqEuclideanHalf ? 0.5f * half_norms[j] : 0.0f; };
  auto log_of = [&](int64_t j) { return P.b[j] > 0 ? static_cast<float>(std::log(P.b[j])) : kNegInfF; };

  if (labels.empty()) {
    Group G;
    G.y = y;
    G.log_b.resize(static_cast<size_t>(y.n));
    G.y_shift.resize(static_cast<size_t>(y.n));
    for (int64_t j = 0; j < y.n; ++j) G.log_b[j] = log_of(j), G.y_shift[j] = shift_of(j);
    P.groups.push_back(std::move(G));
    return P;
  }
  require(static_cast<int64_t>(labels.size()) == y.n, "labels", "length " + std::to_string(labels.size()),
          "length N = " + std::to_string(y.n) + " (one label per data point)");
  int64_t K = 0;
  for (size_t j = 0; j < labels.size(); ++j) {
    if (labels[j] < 0) fail_argument("labels", to_text(labels[j]) + " at index " + std::to_string(j), "labels >= 0");
    K = std::max(K, labels[j] + 1);
  }
  P.labels.assign(labels.begin(), labels.end());
  P.num_classes = K;
  P.class_w.assign(static_cast<size_t>(K), 0.0);
  for (int64_t j = 0; j < y.n; ++j) P.class_w[labels[j]] += P.b[j];
  for (int64_t k = 0; k < K; ++k)
    require(P.class_w[k] > 0, "labels", "class " + std::to_string(k) + " with total weight 0",
            "every class in [0, max label] to have positive weight (no empty or zero-weight class)");
  P.per_class = std::isinf(class_penalty);
  for (int64_t k = 0; k < K; ++k) {
    Group G;
    if (P.per_class) {
      for (int64_t j = 0; j < y.n; ++j)
        if (labels[j] == k) G.cols.push_back(j);
      const int64_t n = static_cast<int64_t>(G.cols.size());
      G.y_own = Points(n, y.d);
      for (int64_t c = 0; c < n; ++c) std::copy_n(y.row(G.cols[c]), y.d, G.y_own.row(c));
      G.y = G.y_own.view();
    } else {
      G.y = y;
      G.penalty.resize(static_cast<size_t>(y.n));
      for (int64_t j = 0; j < y.n; ++j) G.penalty[j] = labels[j] == k ? 0.0f : static_cast<float>(-class_penalty);
    }
    G.log_b.resize(static_cast<size_t>(G.size()));
    G.y_shift.resize(static_cast<size_t>(G.size()));
    for (int64_t c = 0; c < G.size(); ++c) G.log_b[c] = log_of(G.global(c)), G.y_shift[c] = shift_of(G.global(c));
    P.groups.push_back(std::move(G));
  }
  return P;
}

}  // namespace

Points draw_noise(uint64_t seed, uint64_t tag, uint64_t step, int64_t n, int64_t d, const Context& ctx) {
  Points x(n, d);
  const uint64_t key = mix_seed(seed, tag, step);
#pragma omp parallel for num_threads(ctx.resolved_threads()) schedule(static) if (n * d >= 32768)
  for (int64_t i = 0; i < n; ++i) {
    Rng r(key, static_cast<uint64_t>(i));
    r.fill_normal(std::span<float>(x.row(i), static_cast<size_t>(d)));
  }
  return x;
}

namespace {

// n classes k ~ w_k from stream (seed, tag ^ Classes, step).
std::vector<int64_t> draw_classes(std::span<const double> w, uint64_t seed, uint64_t tag, uint64_t step, int64_t n) {
  const int64_t K = static_cast<int64_t>(w.size());
  std::vector<double> cum(w.size());
  std::partial_sum(w.begin(), w.end(), cum.begin());
  Rng r(mix_seed(seed, tag ^ static_cast<uint64_t>(Stream::Classes), step));
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (auto& k : out) {
    const double u = r.uniform() * cum.back();
    k = std::min<int64_t>(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin(), K - 1);
    while (w[k] <= 0) --k;  // u lands past the last positive weight only by rounding
  }
  return out;
}

}  // namespace

std::vector<int64_t> draw_classes(const Prepared& P, uint64_t seed, uint64_t tag, uint64_t step, int64_t n) {
  if (P.num_classes == 0) return {};
  return draw_classes(P.class_w, seed, tag, step, n);
}

Split split_rows(const Prepared& P, PointsView x, std::span<const int64_t> x_labels) {
  Split s;
  if (P.num_classes == 0) {
    s.rows.resize(1);
    return s;
  }
  s.identity = false;
  const size_t K = static_cast<size_t>(P.num_classes);
  s.rows.resize(K);
  for (int64_t i = 0; i < x.n; ++i) s.rows[x_labels[i]].push_back(i);
  s.xs.resize(K);
  for (size_t k = 0; k < K; ++k) {
    s.xs[k] = Points(static_cast<int64_t>(s.rows[k].size()), x.d);
    for (size_t r = 0; r < s.rows[k].size(); ++r) std::copy_n(x.row(s.rows[k][r]), x.d, s.xs[k].row(r));
  }
  return s;
}

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

using namespace sdot_detail;

void SemidiscreteMap::validate() const {
  (void)prepare(y, b, cost, labels, class_penalty);  // one process (sharded maps are checked by each call)
  require(static_cast<int64_t>(g.size()) == y.n, "potential", "length " + std::to_string(g.size()),
          "length N = " + std::to_string(y.n) + " (one value per data point)");
  require_finite(g, "potential");
  require(epsilon >= 0 && std::isfinite(epsilon), "epsilon", epsilon, "a finite number >= 0");
}

namespace {

// The map's cached preparation when it was made for these arrays, else a fresh one (with the int8
// screen when the call searches an argmax and the engine options allow it).
std::shared_ptr<const Prepared> prepared_for(const SemidiscreteMap& map, const Context& ctx, const ScoreOptions& engine,
                                             bool argmax) {
  const auto& c = map.prepared;
  const Communicator* comm = ctx.communicator().size() > 1 ? &ctx.communicator() : nullptr;
  if (c && c->comm == comm && c->y_data == map.y.data && c->N == map.y.n && c->d == map.y.d && c->b_data == map.b.data() &&
      c->labels_data == map.labels.data() && c->cost == map.cost &&
      (c->class_penalty == map.class_penalty || map.labels.empty()))
    return c;
  return std::make_shared<const Prepared>(prepare(map.y, map.b, map.cost, map.labels, map.class_penalty,
                                                  argmax ? &ctx : nullptr, engine, ctx.communicator()));
}

void check_potential(const SemidiscreteMap& map) {
  require(static_cast<int64_t>(map.g.size()) == map.y.n, "potential", "length " + std::to_string(map.g.size()),
          "length N = " + std::to_string(map.y.n) + " (one value per data point)");
  require_finite(map.g, "potential");
  require(map.epsilon >= 0 && std::isfinite(map.epsilon), "epsilon", map.epsilon, "a finite number >= 0");
}

struct MapCall {
  std::shared_ptr<const Prepared> prepared;
  const Prepared& P;
  std::vector<double> g;
  Split split;
  explicit MapCall(std::shared_ptr<const Prepared> p) : prepared(std::move(p)), P(*prepared) {}

  // The per_row best data indices of each noise row: search(k, G, xk, h, idx) fills idx (xk.n * per_row
  // global data indices) for the rows of class k; they are mapped back to rows.
  template <class Search>
  std::vector<int64_t> rows(PointsView x, int64_t per_row, Search&& search) const {
    std::vector<int64_t> out(static_cast<size_t>(x.n * per_row));
    std::vector<float> h;
    for (size_t k = 0; k < P.groups.size(); ++k) {
      const PointsView xk = split.view(k, x);
      if (xk.n == 0) continue;
      const Group& G = P.groups[k];
      P.group_h(k, g, h);
      std::vector<int64_t> idx(static_cast<size_t>(xk.n * per_row));
      search(k, G, xk, h, idx);
      for (int64_t i = 0; i < xk.n; ++i)
        for (int64_t t = 0; t < per_row; ++t) out[split.row(k, i) * per_row + t] = idx[i * per_row + t];
    }
    return out;
  }
};

void check_call(const Prepared& P, const SemidiscreteMap& map, PointsView x, std::span<const int64_t> x_labels);

// The call's preparation and checks (agreed by every rank when sharded).
MapCall start_call(const SemidiscreteMap& map, PointsView x, std::span<const int64_t> x_labels, const Context& ctx,
                   const ScoreOptions& engine, bool argmax) {
  MapCall c(prepared_for(map, ctx, engine, argmax));
  collectively(ctx.communicator(), [&] { check_call(c.P, map, x, x_labels); });
  c.g.assign(map.g.begin(), map.g.end());
  c.split = split_rows(c.P, x, x_labels);
  return c;
}

void check_call(const Prepared& P, const SemidiscreteMap& map, PointsView x, std::span<const int64_t> x_labels) {
  check_potential(map);
  require(x.n >= 0, "noise", "n = " + std::to_string(x.n), "n >= 0");
  require(x.d == map.y.d, "noise", "dimension " + std::to_string(x.d),
          "the data's dimension d = " + std::to_string(map.y.d));
  require_finite(x, "noise");
  if (P.num_classes > 0) {
    require(static_cast<int64_t>(x_labels.size()) == x.n, "noise labels", "length " + std::to_string(x_labels.size()),
            "one class per noise row (" + std::to_string(x.n) + ") for a conditional map");
    for (size_t i = 0; i < x_labels.size(); ++i)
      if (x_labels[i] < 0 || x_labels[i] >= P.num_classes)
        fail_argument("noise labels", to_text(x_labels[i]) + " at index " + std::to_string(i),
                      "classes in [0, " + std::to_string(P.num_classes) + ")");
  } else {
    require(x_labels.empty(), "noise labels", "length " + std::to_string(x_labels.size()),
            "none: the map is unconditional");
  }
}

}  // namespace

void sdot_prepare(SemidiscreteMap& map, const Context& ctx, const ScoreOptions& engine) {
  map.prepared.reset();
  map.prepared = prepared_for(map, ctx, engine, true);
}

bool sdot_int8_screen(const SemidiscreteMap& map) { return map.prepared && map.prepared->screened(); }

std::string_view sdot_argmax_engine(const SemidiscreteMap& map, const ScoreOptions& engine) {
  if (map.epsilon > 0) return engine_path_name(EnginePath::Fp32);  // soft maps: Gumbel draws and softmax sums
  if (sdot_int8_screen(map) && engine.uses_int8_screen()) return engine_path_name(EnginePath::Vnni);
  return engine_path_name(argmax_path(map.y.d, engine));
}

Points sdot_noise(int64_t n, int64_t d, uint64_t seed, const Context& ctx, uint64_t step) {
  require(n >= 0, "n", n, "n >= 0");
  require(d >= 1, "d", d, "d >= 1");
  return draw_noise(seed, static_cast<uint64_t>(Stream::Noise), step, n, d, ctx);
}

std::vector<int64_t> noise_classes(std::span<const double> class_weights, int64_t n, uint64_t seed, uint64_t step) {
  require(n >= 0, "n", n, "n >= 0");
  double total = 0;
  for (double w : class_weights) {
    require(w >= 0 && std::isfinite(w), "class_weights", w, "finite non-negative weights");
    total += w;
  }
  require(total > 0, "class_weights", "all zero (" + std::to_string(class_weights.size()) + " classes)", "some positive weight");
  return draw_classes(class_weights, seed, static_cast<uint64_t>(Stream::Noise), step, n);
}

std::vector<int64_t> sdot_noise_classes(const SemidiscreteMap& map, int64_t n, uint64_t seed, uint64_t step) {
  require(n >= 0, "n", n, "n >= 0");
  if (map.labels.empty()) return {};  // unconditional (also a sharded map's rows: no check needed)
  const Prepared P = prepare(map.y, map.b, map.cost, map.labels, map.class_penalty);
  return draw_classes(P, seed, static_cast<uint64_t>(Stream::Noise), step, n);
}

namespace {

// The ranks' Gumbel-max partials of one unconditional group, merged: keys by global column, so the
// draw is the single process's whatever the rank count.
void sharded_gumbel(const Prepared& P, const Group& G, PointsView x, std::span<const float> h, float scale, uint64_t key,
                    std::span<int64_t> index, const Context& ctx, const ScoreOptions& engine) {
  std::vector<ArgmaxPartial<double>> part(static_cast<size_t>(x.n));
  if (G.size() > 0)
    row_gumbel_partials(ScoreProblem{x, G.y, h, static_cast<uint64_t>(P.offset)}, scale, G.log_b, key, part, ctx, engine);
  std::vector<double> v(part.size());
  for (size_t i = 0; i < part.size(); ++i) v[i] = part[i].value, index[i] = part[i].index;
  P.comm->allreduce_argmax(v, index);
}

}  // namespace

std::vector<int64_t> sdot_assign(const SemidiscreteMap& map, PointsView x, const Context& ctx,
                                 std::span<const int64_t> x_labels, const ScoreOptions& engine) {
  const MapCall c = start_call(map, x, x_labels, ctx, engine, /*argmax=*/true);
  return c.rows(x, 1, [&](size_t, const Group& G, PointsView xk, const std::vector<float>& h, std::vector<int64_t>& idx) {
    std::vector<float> val(static_cast<size_t>(xk.n));
    group_argmax(c.P, G, xk, h, idx, val, ctx, engine);
  });
}

std::vector<int64_t> sdot_sample(const SemidiscreteMap& map, PointsView x, uint64_t seed, const Context& ctx,
                                 std::span<const int64_t> x_labels, const ScoreOptions& engine) {
  if (map.epsilon <= 0) return sdot_assign(map, x, ctx, x_labels, engine);
  const MapCall c = start_call(map, x, x_labels, ctx, engine, /*argmax=*/false);
  return c.rows(x, 1, [&](size_t k, const Group& G, PointsView xk, const std::vector<float>& h, std::vector<int64_t>& idx) {
    const uint64_t key = c.P.num_classes == 0 ? seed : stream_key(seed, Stream::ClassGumbel, k);
    const float scale = static_cast<float>(1.0 / map.epsilon);
    if (c.P.sharded()) return sharded_gumbel(c.P, G, xk, h, scale, key, idx, ctx, engine);
    row_gumbel_argmax(ScoreProblem{xk, G.y, h}, scale, G.log_b, key, idx, ctx, engine);
    for (auto& j : idx) j = G.global(j);
  });
}

std::vector<int64_t> sdot_topk(const SemidiscreteMap& map, PointsView x, int64_t k, const Context& ctx,
                               std::span<const int64_t> x_labels, const ScoreOptions& engine) {
  const MapCall c = start_call(map, x, x_labels, ctx, engine, /*argmax=*/false);
  require_unsharded(c.P, "sdot_topk");
  int64_t smallest = std::numeric_limits<int64_t>::max();
  for (const auto& G : c.P.groups) {
    int64_t support = 0;
    for (int64_t col = 0; col < G.size(); ++col) support += c.P.b[G.global(col)] > 0;
    smallest = std::min(smallest, support);
  }
  require(k >= 1 && k <= smallest, "k", k,
          "1 <= k <= " + std::to_string(smallest) + " (the smallest set of candidate points with b > 0)");
  return c.rows(x, k, [&](size_t, const Group& G, PointsView xk, const std::vector<float>& h, std::vector<int64_t>& idx) {
    std::vector<float> val(static_cast<size_t>(xk.n * k));
    row_topk(ScoreProblem{xk, G.y, h}, k, idx, val, ctx, engine);
    for (auto& j : idx) j = G.global(j);
  });
}

SdotMarginalStats sdot_check(const SemidiscreteMap& map, int64_t batch, int64_t repeats, uint64_t seed,
                             const Context& ctx, const ScoreOptions& engine) {
  require(batch >= 2, "batch", batch, "at least 2 draws per batch");
  require(repeats >= 1, "repeats", repeats, "at least 1");
  const auto P = prepared_for(map, ctx, engine, /*argmax=*/map.epsilon <= 0);
  collectively(ctx.communicator(), [&] { check_potential(map); });
  const std::vector<double> g(map.g.begin(), map.g.end());
  return marginal_stats(*P, g, map.epsilon, batch, repeats, seed, ctx, engine);
}

double sdot_reference_cost_std(PointsView y, std::span<const double> b, SdotCost cost, uint64_t seed,
                               const Context& ctx, int64_t noise_draws, int64_t max_points) {
  require(noise_draws >= 1, "reference_draws", noise_draws, "a positive integer");
  require(max_points >= 1, "reference_points", max_points, "a positive integer");
  const Prepared P = prepare(y, b, cost, {}, std::numeric_limits<double>::infinity());
  std::vector<int64_t> support;
  for (int64_t j = 0; j < P.N; ++j)
    if (P.b[j] > 0) support.push_back(j);
  if (static_cast<int64_t>(support.size()) > max_points) {
    Rng r(stream_key(seed, Stream::CostScale, 1));
    for (int64_t t = 0; t < max_points; ++t) {
      const int64_t u = t + r.below(static_cast<int64_t>(support.size()) - t);
      std::swap(support[t], support[u]);
    }
    support.resize(static_cast<size_t>(max_points));
    std::sort(support.begin(), support.end());
  }
  const int64_t m = static_cast<int64_t>(support.size());
  Points ys(m, y.d);
  for (int64_t c = 0; c < m; ++c) std::copy_n(y.row(support[c]), y.d, ys.row(c));
  const Points x = draw_noise(seed, static_cast<uint64_t>(Stream::CostScale), 0, noise_draws, y.d, ctx);
  std::vector<float> S(static_cast<size_t>(noise_draws * m));
  score_matrix(ScoreProblem{x, ys, {}}, S, ctx);
  const auto nx = squared_norms(x), ny = squared_norms(ys);
  auto C = [&](int64_t i, int64_t c) {
    const double dot = S[i * m + c];
    return cost == SdotCost::SqEuclideanHalf ? 0.5 * (nx[i] + ny[c]) - dot : -dot;
  };
  double mean = 0;
  for (int64_t i = 0; i < noise_draws; ++i)
    for (int64_t c = 0; c < m; ++c) mean += C(i, c);
  mean /= static_cast<double>(noise_draws * m);
  double var = 0;
  for (int64_t i = 0; i < noise_draws; ++i)
    for (int64_t c = 0; c < m; ++c) var += (C(i, c) - mean) * (C(i, c) - mean);
  return std::sqrt(var / static_cast<double>(noise_draws * m));
}

}  // namespace otgen
