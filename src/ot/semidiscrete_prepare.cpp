// Semidiscrete targets prepared for the engine: groups (one per class, or one), their biases, the int8
// and bf16 screens, the sharded preparation, the group argmax, and the split of noise rows by class.
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

void require_unsharded(const Communicator& comm, const std::string& what) {
  if (comm.size() > 1)
    throw CollectiveError(what + " is not sharded yet: run it on one process (without mpirun, or mpirun -np 1)");
}

void require_unsharded(const Prepared& P, const std::string& what) {
  if (P.sharded()) require_unsharded(*P.comm, what);
}

std::shared_ptr<const Projection> basis_projection(std::span<const float> basis, int64_t D) {
  const auto size = static_cast<int64_t>(basis.size());
  const int64_t K = D > 0 ? size / D : 0;
  require(K >= 1 && K <= D && K * D == size, "pca basis", std::to_string(size) + " values",
          "a (K, d) basis with 1 <= K <= d = " + std::to_string(D) + " (K * d values)");
  require_finite(basis, "pca basis");
  for (int64_t a = 0; a < K; ++a)  // U U^T = I_K, in double
    for (int64_t c = a; c < K; ++c) {
      double dot = 0;
      for (int64_t k = 0; k < D; ++k) dot += static_cast<double>(basis[a * D + k]) * basis[c * D + k];
      if (std::abs(dot - (a == c ? 1.0 : 0.0)) > 1e-3)
        fail_argument("pca basis", "rows " + std::to_string(a) + " and " + std::to_string(c) + " with dot product " +
                                       to_text(dot),
                      "orthonormal rows (U U^T = I within 1e-3)");
    }
  auto proj = std::make_shared<Projection>();
  proj->D = D, proj->K = K;
  proj->U.assign(basis.begin(), basis.end());
  return proj;
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
    for (Group& G : P.groups) {
      const bool whole = G.y.data == y.data;
      // The size rules count every column a search scans: all ranks' for a sharded whole set, so that
      // every rank decides as one process would.
      const EnginePath path = argmax_path(P.scanned(G), y.d, engine);
      if (engine.builds_int8_screen(P.scanned(G), y.d)) {
        const bool amx = engine.int8_screen_on_amx();
        if (whole && !shared) shared = LatticeColumns::build(y, *screen_ctx, amx);
        G.lattice = whole ? shared : LatticeColumns::build(G.y, *screen_ctx, amx);
      }
      if (G.lattice || !bf16_screen_path(path)) continue;
      if (whole && !shared16) shared16 = Bf16Columns::build(y, *screen_ctx, path);
      G.bf16 = whole ? shared16 : Bf16Columns::build(G.y, *screen_ctx, path);
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
  else if (G.bf16 && argmax_path(P.scanned(G), x.d, engine) == G.bf16->path())
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

}  // namespace sdot_detail
}  // namespace otgen
