// The noise of semidiscrete OT: N(0, I) batches and their classes, from the seed rule's streams
// (otgen/core/streams.h); the public draws sdot_noise, noise_classes and sdot_noise_classes.
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

Points draw_noise(uint64_t seed, Stream stream, uint64_t step, int64_t n, int64_t d, const Context& ctx) {
  Points x(n, d);
  const uint64_t key = stream_key(seed, stream, step);
#pragma omp parallel for num_threads(ctx.resolved_threads()) schedule(static) if (n * d >= 4096)
  for (int64_t i = 0; i < n; ++i) {
    Rng r(key, static_cast<uint64_t>(i));
    r.fill_normal(std::span<float>(x.row(i), static_cast<size_t>(d)));
  }
  return x;
}

Points draw_noise(const Projection* proj, uint64_t seed, Stream stream, uint64_t step, int64_t n, int64_t d,
                  const Context& ctx) {
  if (!proj) return draw_noise(seed, stream, step, n, d, ctx);
  return proj->apply(draw_noise(seed, stream, step, n, proj->D, ctx), ctx);
}

Points Projection::apply(PointsView x, const Context& ctx) const {
  Points z(x.n, K);
  if (x.n > 0) score_matrix(ScoreProblem{x, PointsView{U.data(), K, D}, {}}, z.data, ctx);
  return z;
}

namespace {

// n classes k ~ w_k from the key mix_seed(seed, classes_tag(stream), step).
std::vector<int64_t> draw_classes(std::span<const double> w, uint64_t seed, Stream stream, uint64_t step, int64_t n) {
  const int64_t K = static_cast<int64_t>(w.size());
  std::vector<double> cum(w.size());
  std::partial_sum(w.begin(), w.end(), cum.begin());
  Rng r(mix_seed(seed, classes_tag(stream), step));
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (auto& k : out) {
    const double u = r.uniform() * cum.back();
    k = std::min<int64_t>(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin(), K - 1);
    while (w[k] <= 0) --k;  // u lands past the last positive weight only by rounding
  }
  return out;
}

}  // namespace

std::vector<int64_t> draw_classes(const Prepared& P, uint64_t seed, Stream stream, uint64_t step, int64_t n) {
  if (P.num_classes == 0) return {};
  return draw_classes(P.class_w, seed, stream, step, n);
}

}  // namespace sdot_detail

using namespace sdot_detail;

Points sdot_noise(int64_t n, int64_t d, uint64_t seed, const Context& ctx, uint64_t step) {
  require(n >= 0, "n", n, "n >= 0");
  require(d >= 1, "d", d, "d >= 1");
  return draw_noise(seed, Stream::Noise, step, n, d, ctx);
}

std::vector<int64_t> noise_classes(std::span<const double> class_weights, int64_t n, uint64_t seed, uint64_t step) {
  require(n >= 0, "n", n, "n >= 0");
  double total = 0;
  for (double w : class_weights) {
    require(w >= 0 && std::isfinite(w), "class_weights", w, "finite non-negative weights");
    total += w;
  }
  require(total > 0, "class_weights", "all zero (" + std::to_string(class_weights.size()) + " classes)", "some positive weight");
  return draw_classes(class_weights, seed, Stream::Noise, step, n);
}

std::vector<int64_t> sdot_noise_classes(const SemidiscreteMap& map, int64_t n, uint64_t seed, uint64_t step) {
  require(n >= 0, "n", n, "n >= 0");
  if (map.labels.empty()) return {};  // unconditional (also a sharded map's rows: no check needed)
  const Prepared P = prepare(map.y, map.b, map.cost, map.labels, map.class_penalty);
  return draw_classes(P, seed, Stream::Noise, step, n);
}

}  // namespace otgen
