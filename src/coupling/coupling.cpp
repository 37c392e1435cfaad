// Couplings (otgen/coupling/coupling.h).
#include "otgen/coupling/coupling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>

#include "otgen/ot/assignment.h"
#include "otgen/core/error.h"
#include "otgen/core/rng.h"
#include "otgen/kernels/scores.h"
#include "otgen/core/streams.h"

namespace otgen {

void CouplingData::validate() const {
  require(x.n >= 1 && x.d >= 1, "data", "shape (" + std::to_string(x.n) + ", " + std::to_string(x.d) + ")",
          "at least one point of dimension >= 1");
  require(x.data != nullptr, "data", "null pointer", "point data");
  if (labels.empty()) return;
  require(static_cast<int64_t>(labels.size()) == x.n, "labels", "length " + std::to_string(labels.size()),
          "empty or the number of data points, " + std::to_string(x.n));
  require(num_classes >= 1, "num_classes", num_classes, "at least 1 with labelled data");
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= num_classes)
      fail_argument("labels", to_text(labels[i]) + " at index " + std::to_string(i),
                    "classes in [0, " + std::to_string(num_classes) + ")");
}

namespace {

std::vector<std::vector<int64_t>> group_by_class(const CouplingData& d) {
  std::vector<std::vector<int64_t>> g;
  if (d.labels.empty()) return g;
  g.resize(d.num_classes);
  for (int64_t i = 0; i < d.x.n; ++i) g[d.labels[i]].push_back(i);
  return g;
}

void check_noise(PointsView noise, std::span<const int64_t> noise_labels, const CouplingData& d,
                 const std::vector<std::vector<int64_t>>& by_class) {
  require(noise.n >= 1, "noise", "n = " + std::to_string(noise.n), "at least one row");
  require(noise.d == d.x.d, "noise", "dimension " + std::to_string(noise.d), "the data dimension " + std::to_string(d.x.d));
  require_finite(noise, "noise");
  if (noise_labels.empty()) return;
  require(!d.labels.empty(), "noise_labels", "given", "labelled data (class-wise matching)");
  require(static_cast<int64_t>(noise_labels.size()) == noise.n, "noise_labels",
          "length " + std::to_string(noise_labels.size()), "the number of noise rows, " + std::to_string(noise.n));
  for (size_t i = 0; i < noise_labels.size(); ++i) {
    const int64_t k = noise_labels[i];
    if (k < 0 || k >= d.num_classes || by_class[k].empty())
      fail_argument("noise_labels", to_text(k) + " at index " + std::to_string(i), "a class with data points");
  }
}

// Rows of the noise batch per class (all rows in class 0 when unconditional).
std::vector<std::vector<int64_t>> noise_groups(int64_t n, std::span<const int64_t> noise_labels, int64_t classes) {
  std::vector<std::vector<int64_t>> g(noise_labels.empty() ? 1 : classes);
  for (int64_t i = 0; i < n; ++i) g[noise_labels.empty() ? 0 : noise_labels[i]].push_back(i);
  return g;
}

// k draws from pool (indices), without replacement when k <= |pool| (partial Fisher-Yates), else with.
std::vector<int64_t> draw(const std::vector<int64_t>* pool, int64_t pool_n, int64_t k, Rng& rng) {
  auto at = [&](int64_t t) { return pool ? (*pool)[t] : t; };
  std::vector<int64_t> out(k);
  if (k > pool_n) {
    for (int64_t t = 0; t < k; ++t) out[t] = at(rng.below(pool_n));
    return out;
  }
  // Sparse Fisher-Yates for a large pool: only the touched positions are stored.
  std::unordered_map<int64_t, int64_t> moved;  // position -> value
  auto get = [&](int64_t p) {
    const auto it = moved.find(p);
    return it == moved.end() ? p : it->second;
  };
  if (k * 8 >= pool_n) {
    std::vector<int64_t> perm(pool_n);
    for (int64_t t = 0; t < pool_n; ++t) perm[t] = t;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t r = t + rng.below(pool_n - t);
      std::swap(perm[t], perm[r]);
      out[t] = at(perm[t]);
    }
    return out;
  }
  for (int64_t t = 0; t < k; ++t) {
    const int64_t r = t + rng.below(pool_n - t);
    const int64_t vr = get(r), vt = get(t);
    moved[r] = vt;
    moved[t] = vr;
    out[t] = at(vr);
  }
  return out;
}

Pairs with_labels(std::vector<int64_t> target, const CouplingData& d) {
  Pairs p;
  p.target = std::move(target);
  if (!d.labels.empty()) {
    p.labels.resize(p.target.size());
    for (size_t i = 0; i < p.target.size(); ++i) p.labels[i] = d.labels[p.target[i]];
  }
  return p;
}

Points gather(PointsView x, const std::vector<int64_t>& rows) {
  Points out(static_cast<int64_t>(rows.size()), x.d);
  for (size_t r = 0; r < rows.size(); ++r) std::copy(x.row(rows[r]), x.row(rows[r]) + x.d, out.row(static_cast<int64_t>(r)));
  return out;
}

}  // namespace

// Each class's share of the points (uniform weights); empty for unlabelled data.
static std::vector<double> label_shares(const CouplingData& d) {
  std::vector<double> w(d.labels.empty() ? 0 : static_cast<size_t>(d.num_classes), 0.0);
  for (const int64_t l : d.labels) w[l] += 1.0 / static_cast<double>(d.x.n);
  return w;
}

// ---- Independent ----

std::vector<double> IndependentCoupling::class_weights() const { return label_shares(data_); }
std::vector<double> BatchOTCoupling::class_weights() const { return label_shares(data_); }

IndependentCoupling::IndependentCoupling(CouplingData data) : data_(data) {
  data_.validate();
  by_class_ = group_by_class(data_);
}

Pairs IndependentCoupling::sample(PointsView noise, std::span<const int64_t> noise_labels, uint64_t seed,
                                  const Context& ctx) const {
  ctx.validate();
  check_noise(noise, noise_labels, data_, by_class_);
  Rng rng(seed, 0x1d);
  std::vector<int64_t> target(noise.n);
  for (int64_t i = 0; i < noise.n; ++i) {
    if (noise_labels.empty()) {
      target[i] = rng.below(data_.x.n);
    } else {
      const auto& pool = by_class_[noise_labels[i]];
      target[i] = pool[rng.below(static_cast<int64_t>(pool.size()))];
    }
  }
  return with_labels(std::move(target), data_);
}

// ---- Batch OT ----

BatchOTOptions::BatchOTOptions() {
  sinkhorn.epsilon = 0.05;
  sinkhorn.relative_epsilon = true;
  sinkhorn.tol = 1e-3;
}

void BatchOTOptions::validate() const { sinkhorn.validate(); }

BatchOTCoupling::BatchOTCoupling(CouplingData data, BatchOTOptions opt) : data_(data), opt_(std::move(opt)) {
  data_.validate();
  opt_.validate();
  by_class_ = group_by_class(data_);
}

void BatchOTCoupling::match(PointsView noise, const std::vector<int64_t>& rows, const std::vector<int64_t>& batch,
                            uint64_t seed, const Context& ctx, std::vector<int64_t>& target) const {
  const Points x0 = gather(noise, rows), x1 = gather(data_.x, batch);
  std::vector<int64_t> sigma;
  if (opt_.method == BatchOTMethod::Exact) {
    sigma = exact_assignment(x0, x1, ctx).permutation;
  } else {
    Context quiet = ctx;
    quiet.quiet = true;
    const SinkhornResult plan = sinkhorn(x0, x1, {}, {}, quiet, opt_.sinkhorn);
    if (plan.termination == Termination::NumericalFailure) throw Error("batch OT coupling: " + plan.message);
    sigma = sinkhorn_pairs(x0, x1, {}, plan, seed, opt_.round_to_permutation, ctx);
  }
  for (size_t r = 0; r < rows.size(); ++r) target[rows[r]] = batch[sigma[r]];
}

Pairs BatchOTCoupling::sample(PointsView noise, std::span<const int64_t> noise_labels, uint64_t seed,
                              const Context& ctx) const {
  ctx.validate();
  check_noise(noise, noise_labels, data_, by_class_);
  std::vector<int64_t> target(noise.n, -1);
  const auto groups = noise_groups(noise.n, noise_labels, data_.num_classes);
  for (size_t k = 0; k < groups.size(); ++k) {
    const auto& rows = groups[k];
    if (rows.empty()) continue;
    Rng rng(seed, 0xb0 + k);
    const std::vector<int64_t>* pool = noise_labels.empty() ? nullptr : &by_class_[k];
    const int64_t pool_n = pool ? static_cast<int64_t>(pool->size()) : data_.x.n;
    const std::vector<int64_t> batch = draw(pool, pool_n, static_cast<int64_t>(rows.size()), rng);
    match(noise, rows, batch, stream_key(seed, Stream::BatchOT, k), ctx, target);
  }
  return with_labels(std::move(target), data_);
}

std::vector<double> SemidiscreteCoupling::class_weights() const {
  if (data_.labels.empty() || b_.empty()) return label_shares(data_);
  std::vector<double> w(static_cast<size_t>(data_.num_classes), 0.0);
  for (size_t j = 0; j < b_.size(); ++j) w[data_.labels[j]] += b_[j];
  return w;
}

// ---- Semidiscrete ----

SemidiscreteCoupling::SemidiscreteCoupling(CouplingData data, std::vector<float> g, double eps, std::vector<double> b,
                                           double class_penalty, std::vector<float> pca_basis)
    : data_(data), g_(std::move(g)), b_(std::move(b)), basis_(std::move(pca_basis)), eps_(eps),
      class_penalty_(class_penalty),
      by_class_(group_by_class(data_)) {
  data_.validate();
  require(class_penalty > 0 && !std::isnan(class_penalty), "class penalty", class_penalty,
          "a positive number (infinity = one potential per class)");
  const int64_t N = data_.x.n;
  require(static_cast<int64_t>(g_.size()) == N, "g", "length " + std::to_string(g_.size()),
          "the number of data points, " + std::to_string(N));
  require(std::isfinite(eps) && eps >= 0, "eps", eps, "a finite number >= 0");
  // Validates (g finite, weights non-negative summing to 1, classes with mass) and prepares each map
  // once; the int8 screen only serves eps = 0.
  ScoreOptions engine;
  engine.int8_screen = eps_ == 0;
  for (int per_class = 0; per_class <= (data_.labels.empty() ? 0 : 1); ++per_class) {
    SemidiscreteMap m = map(per_class == 1);
    m.validate();
    sdot_prepare(m, Context{}, engine);
    prepared_[per_class] = m.prepared;
  }
}

std::string SemidiscreteCoupling::engine() const { return std::string(sdot_argmax_engine(map(false))); }

SemidiscreteMap SemidiscreteCoupling::map(bool per_class) const {
  SdotProblem problem{data_.x, b_};
  if (per_class) {  // class-wise matching (beta = infinity) or the finite-penalty cost
    problem.labels = data_.labels;
    problem.class_penalty = class_penalty_;
  }
  SemidiscreteMap m(problem, g_, eps_, basis_);
  m.prepared = prepared_[per_class ? 1 : 0];
  return m;
}

Pairs SemidiscreteCoupling::sample(PointsView noise, std::span<const int64_t> noise_labels, uint64_t seed,
                                   const Context& ctx) const {
  ctx.validate();
  check_noise(noise, noise_labels, data_, by_class_);
  return with_labels(sdot_sample(map(!noise_labels.empty()), noise, seed, ctx, noise_labels), data_);
}

}  // namespace otgen
