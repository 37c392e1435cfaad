// Semidiscrete maps: the public calls on a fitted map (prepare, assign, sample, top-k, check, the
// reference cost). Preparation is in semidiscrete_prepare.cpp, noise in semidiscrete_noise.cpp, the fit's
// batch reductions in semidiscrete_batch.cpp, the marginal checks in semidiscrete_check.cpp.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>

#include "ot/cost_matrix.h"
#include "ot/semidiscrete_internal.h"
#include "otgen/core/error.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/core/streams.h"

namespace otgen {

using namespace sdot_detail;

void SemidiscreteMap::validate() const {
  (void)prepare(y, b, cost, labels, class_penalty);  // one process (sharded maps are checked by each call)
  require(static_cast<int64_t>(g.size()) == y.n, "potential", "length " + std::to_string(g.size()),
          "length N = " + std::to_string(y.n) + " (one value per data point)");
  require_finite(g, "potential");
  require(epsilon >= 0 && std::isfinite(epsilon), "epsilon", epsilon, "a finite number >= 0");
  if (!pca_basis.empty()) (void)basis_projection(pca_basis, y.d);
}

namespace {

// A fresh preparation of the map's arrays; under PCA matching, of the projected data (kept in it).
Prepared prepare_map(const SemidiscreteMap& map, const Context& ctx, const ScoreOptions& engine, bool argmax) {
  const Context* screen = argmax ? &ctx : nullptr;
  if (map.pca_basis.empty())
    return prepare(map.y, map.b, map.cost, map.labels, map.class_penalty, screen, engine, ctx.communicator());
  require_unsharded(ctx.communicator(), "PCA-reduced matching (a map with a pca basis)");
  (void)prepare(map.y, map.b, map.cost, map.labels, map.class_penalty);  // the full data's checks and messages
  auto proj = basis_projection(map.pca_basis, map.y.d);
  auto z = std::make_shared<const Points>(proj->apply(map.y, ctx));
  Prepared P = prepare(z->view(), map.b, map.cost, map.labels, map.class_penalty, screen, engine);
  P.proj = std::move(proj);
  P.projected = std::move(z);
  P.y_data = map.y.data;  // what the cache is keyed by
  P.basis_data = map.pca_basis.data();
  return P;
}

// The map's cached preparation when it was made for these arrays, else a fresh one (with the int8
// screen when the call searches an argmax and the engine options allow it).
std::shared_ptr<const Prepared> prepared_for(const SemidiscreteMap& map, const Context& ctx, const ScoreOptions& engine,
                                             bool argmax) {
  const auto& c = map.prepared;
  const Communicator* comm = ctx.communicator().size() > 1 ? &ctx.communicator() : nullptr;
  if (c && c->comm == comm && c->y_data == map.y.data && c->N == map.y.n && c->noise_d() == map.y.d &&
      c->b_data == map.b.data() && c->labels_data == map.labels.data() && c->cost == map.cost &&
      c->basis_data == map.pca_basis.data() && (c->proj ? c->proj->U.size() : 0) == map.pca_basis.size() &&
      (c->class_penalty == map.class_penalty || map.labels.empty()))
    return c;
  return std::make_shared<const Prepared>(prepare_map(map, ctx, engine, argmax));
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
  Points projected;  // PCA matching: the noise projected (U x)
  PointsView x;      // the noise in the matching space
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
  if (c.P.proj) c.projected = c.P.proj->apply(x, ctx);
  c.x = c.P.proj ? c.projected.view() : x;
  c.split = split_rows(c.P, c.x, x_labels);
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
  if (map.prepared) return map.prepared->argmax_path_name(engine);
  const int64_t d = map.pca_basis.empty() || map.y.d == 0 ? map.y.d : static_cast<int64_t>(map.pca_basis.size()) / map.y.d;
  return engine_path_name(argmax_path(map.y.n, d, engine));  // the matching dimension
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
  return c.rows(c.x, 1, [&](size_t, const Group& G, PointsView xk, const std::vector<float>& h, std::vector<int64_t>& idx) {
    std::vector<float> val(static_cast<size_t>(xk.n));
    group_argmax(c.P, G, xk, h, idx, val, ctx, engine);
  });
}

std::vector<int64_t> sdot_sample(const SemidiscreteMap& map, PointsView x, uint64_t seed, const Context& ctx,
                                 std::span<const int64_t> x_labels, const ScoreOptions& engine) {
  if (map.epsilon <= 0) return sdot_assign(map, x, ctx, x_labels, engine);
  const MapCall c = start_call(map, x, x_labels, ctx, engine, /*argmax=*/false);
  return c.rows(c.x, 1, [&](size_t k, const Group& G, PointsView xk, const std::vector<float>& h, std::vector<int64_t>& idx) {
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
  return c.rows(c.x, k, [&](size_t, const Group& G, PointsView xk, const std::vector<float>& h, std::vector<int64_t>& idx) {
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
  return reference_cost_std(y, b, cost, seed, ctx, noise_draws, max_points, nullptr);
}

double sdot_detail::reference_cost_std(PointsView y, std::span<const double> b, SdotCost cost, uint64_t seed,
                                       const Context& ctx, int64_t noise_draws, int64_t max_points,
                                       const Projection* proj) {
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
  const Points x = draw_noise(proj, seed, Stream::CostScale, 0, noise_draws, y.d, ctx);
  return detail::cost_moments(x, ys, ctx, {}, cost == SdotCost::SqEuclideanHalf).stddev;
}

}  // namespace otgen
