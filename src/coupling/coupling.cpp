// Couplings (otgen/coupling.h).
#include "otgen/coupling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>

#include "otgen/assignment.h"
#include "otgen/error.h"
#include "otgen/rng.h"
#include "otgen/scores.h"

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

// ---- Independent ----

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
    match(noise, rows, batch, mix_seed(seed, 0x5a, k), ctx, target);
  }
  return with_labels(std::move(target), data_);
}

// ---- Semidiscrete ----

SemidiscreteCoupling::SemidiscreteCoupling(CouplingData data, std::vector<float> g, double eps, std::vector<double> b)
    : data_(data), eps_(eps) {
  data_.validate();
  const int64_t N = data_.x.n;
  require(static_cast<int64_t>(g.size()) == N, "g", "length " + std::to_string(g.size()),
          "the number of data points, " + std::to_string(N));
  require_finite(std::span<const float>(g), "g");
  require(std::isfinite(eps) && eps >= 0, "eps", eps, "a finite number >= 0");
  require(b.empty() || static_cast<int64_t>(b.size()) == N, "b", "length " + std::to_string(b.size()),
          "empty or " + std::to_string(N));
  for (size_t j = 0; j < b.size(); ++j)
    if (!(std::isfinite(b[j]) && b[j] >= 0)) fail_argument("b", to_text(b[j]) + " at index " + std::to_string(j), "non-negative weights");
  const std::vector<float> ny = squared_norms(data_.x);
  std::vector<float> h(N), log_b;
  for (int64_t j = 0; j < N; ++j) h[j] = g[j] - 0.5f * ny[j];
  if (!b.empty()) {
    log_b.resize(N);
    for (int64_t j = 0; j < N; ++j) log_b[j] = b[j] > 0 ? static_cast<float>(std::log(b[j])) : -std::numeric_limits<float>::infinity();
    // At eps = 0 the mask goes into h (row_argmax has no log_b).
    for (int64_t j = 0; j < N; ++j)
      if (b[j] == 0) h[j] = -std::numeric_limits<float>::infinity();
  }
  all_.y = data_.x;
  all_.h = h;
  all_.log_b = log_b;
  for (const auto& rows : group_by_class(data_)) {
    Part p;
    p.store = gather(data_.x, rows);
    p.index = rows;
    for (int64_t j : rows) {
      p.h.push_back(h[j]);
      if (!log_b.empty()) p.log_b.push_back(log_b[j]);
    }
    by_class_.push_back(std::move(p));
  }
  for (Part& p : by_class_) p.y = p.store.view();
}

void SemidiscreteCoupling::assign(const Part& part, PointsView x, uint64_t seed, uint64_t row_offset,
                                  const Context& ctx, std::span<int64_t> out) const {
  const ScoreProblem prob{x, part.y, part.h};
  if (eps_ == 0) {
    std::vector<float> value(static_cast<size_t>(x.n));
    row_argmax(prob, out, value, ctx);
  } else {
    row_gumbel_argmax(prob, static_cast<float>(1.0 / eps_), part.log_b, seed, out, ctx, {}, row_offset);
  }
  if (!part.index.empty())
    for (int64_t& j : out) j = part.index[j];
}

Pairs SemidiscreteCoupling::sample(PointsView noise, std::span<const int64_t> noise_labels, uint64_t seed,
                                   const Context& ctx) const {
  ctx.validate();
  std::vector<std::vector<int64_t>> pools;
  if (!data_.labels.empty()) {
    pools.resize(data_.num_classes);
    for (size_t k = 0; k < by_class_.size(); ++k) pools[k] = by_class_[k].index;
  }
  check_noise(noise, noise_labels, data_, pools);
  std::vector<int64_t> target(noise.n);
  if (noise_labels.empty()) {
    assign(all_, noise, seed, 0, ctx, target);
  } else {
    const auto groups = noise_groups(noise.n, noise_labels, data_.num_classes);
    for (size_t k = 0; k < groups.size(); ++k) {
      if (groups[k].empty()) continue;
      const Points x = gather(noise, groups[k]);
      std::vector<int64_t> out(groups[k].size());
      assign(by_class_[k], x, mix_seed(seed, 0x5d, k), 0, ctx, out);
      for (size_t r = 0; r < out.size(); ++r) target[groups[k][r]] = out[r];
    }
  }
  return with_labels(std::move(target), data_);
}

}  // namespace otgen
