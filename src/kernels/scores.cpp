// PLACEHOLDER implementation of otgen/scores.h: straightforward double-precision loops, correct but
// slow. The tiled GEMM engine (issue 3) replaces this file; the contract in the header stays.
#include "otgen/scores.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "otgen/error.h"
#include "otgen/rng.h"

namespace otgen {

void ScoreOptions::validate() const {
  require(tile_rows > 0, "tile_rows", tile_rows, "a positive integer");
  require(tile_cols > 0, "tile_cols", tile_cols, "a positive integer");
}

void ScoreProblem::validate() const {
  require(x.n >= 0 && x.d >= 1, "x", "shape (" + std::to_string(x.n) + ", " + std::to_string(x.d) + ")", "n >= 0 and d >= 1");
  require(y.n >= 0 && y.d >= 1, "y", "shape (" + std::to_string(y.n) + ", " + std::to_string(y.d) + ")", "m >= 0 and d >= 1");
  require(x.d == y.d, "y", "dimension " + std::to_string(y.d), "the dimension of x, " + std::to_string(x.d));
  require(h.empty() || static_cast<int64_t>(h.size()) == y.n, "h", "length " + std::to_string(h.size()),
          "empty or the number of y points, " + std::to_string(y.n));
  for (size_t j = 0; j < h.size(); ++j)
    if (std::isnan(h[j]) || h[j] == std::numeric_limits<float>::infinity())
      fail_argument("h", to_text(h[j]) + " at index " + std::to_string(j), "finite values or -infinity (masked)");
}

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

void check_len(std::string_view name, size_t got, int64_t want) {
  require(static_cast<int64_t>(got) == want, name, "length " + std::to_string(got), "length " + std::to_string(want));
}

void check_log_b(std::span<const float> log_b, int64_t m) {
  require(log_b.empty() || static_cast<int64_t>(log_b.size()) == m, "log_b", "length " + std::to_string(log_b.size()),
          "empty or " + std::to_string(m));
  for (size_t j = 0; j < log_b.size(); ++j)
    if (std::isnan(log_b[j]) || log_b[j] == std::numeric_limits<float>::infinity())
      fail_argument("log_b", to_text(log_b[j]) + " at index " + std::to_string(j), "finite values or -infinity (masked)");
}

double dot(const float* a, const float* b, int64_t d) {
  double s = 0;
  for (int64_t k = 0; k < d; ++k) s += static_cast<double>(a[k]) * b[k];
  return s;
}

double score(const ScoreProblem& p, int64_t i, int64_t j) {
  return dot(p.x.row(i), p.y.row(j), p.x.d) + (p.h.empty() ? 0.0 : p.h[j]);
}

double logit(const ScoreProblem& p, float scale, std::span<const float> log_b, int64_t i, int64_t j) {
  if (!p.h.empty() && std::isinf(p.h[j])) return kNegInf;
  if (!log_b.empty() && std::isinf(log_b[j])) return kNegInf;
  return scale * score(p, i, j) + (log_b.empty() ? 0.0 : log_b[j]);
}

double row_lse(const ScoreProblem& p, float scale, std::span<const float> log_b, int64_t i) {
  double mx = kNegInf;
  for (int64_t j = 0; j < p.y.n; ++j) mx = std::max(mx, logit(p, scale, log_b, i, j));
  if (mx == kNegInf) return kNegInf;
  double s = 0;
  for (int64_t j = 0; j < p.y.n; ++j) s += std::exp(logit(p, scale, log_b, i, j) - mx);
  return mx + std::log(s);
}

void require_some_column(const ScoreProblem& p, std::span<const float> log_b) {
  if (p.x.n == 0) return;
  bool any = false;
  for (int64_t j = 0; j < p.y.n && !any; ++j)
    any = (p.h.empty() || !std::isinf(p.h[j])) && (log_b.empty() || !std::isinf(log_b[j]));
  require(any, "y", std::to_string(p.y.n) + " points, all masked", "at least one unmasked point");
}

double sqdist(const float* a, const float* b, int64_t d) {
  double s = 0;
  for (int64_t k = 0; k < d; ++k) {
    const double t = static_cast<double>(a[k]) - b[k];
    s += t * t;
  }
  return s;
}

void check_pair(PointsView x, PointsView y) { ScoreProblem{x, y, {}}.validate(); }

}  // namespace

void row_argmax(const ScoreProblem& p, std::span<int64_t> index, std::span<float> value, const Context& ctx,
                const ScoreOptions& opt) {
  p.validate();
  opt.validate();
  check_len("index", index.size(), p.x.n);
  check_len("value", value.size(), p.x.n);
  require_some_column(p, {});
#pragma omp parallel for num_threads(ctx.resolved_threads())
  for (int64_t i = 0; i < p.x.n; ++i) {
    double best = kNegInf;
    int64_t arg = -1;
    for (int64_t j = 0; j < p.y.n; ++j) {
      if (!p.h.empty() && std::isinf(p.h[j])) continue;
      const double s = score(p, i, j);
      if (arg < 0 || s > best) best = s, arg = j;
    }
    index[i] = arg;
    value[i] = static_cast<float>(best);
  }
}

void row_topk(const ScoreProblem& p, int64_t k, std::span<int64_t> index, std::span<float> value, const Context& ctx,
              const ScoreOptions& opt) {
  p.validate();
  opt.validate();
  require(k >= 1 && k <= p.y.n, "k", k, "1 <= k <= m = " + std::to_string(p.y.n));
  check_len("index", index.size(), p.x.n * k);
  check_len("value", value.size(), p.x.n * k);
#pragma omp parallel for num_threads(ctx.resolved_threads())
  for (int64_t i = 0; i < p.x.n; ++i) {
    std::vector<std::pair<double, int64_t>> s(p.y.n);
    for (int64_t j = 0; j < p.y.n; ++j) {
      const bool masked = !p.h.empty() && std::isinf(p.h[j]);
      s[j] = {masked ? kNegInf : score(p, i, j), j};
    }
    std::partial_sort(s.begin(), s.begin() + k, s.end(), [](auto& a, auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (int64_t t = 0; t < k; ++t) index[i * k + t] = s[t].second, value[i * k + t] = static_cast<float>(s[t].first);
  }
}

void row_logsumexp(const ScoreProblem& p, float scale, std::span<const float> log_b, std::span<float> lse,
                   const Context& ctx, const ScoreOptions& opt) {
  p.validate();
  opt.validate();
  require(scale > 0 && std::isfinite(scale), "scale", scale, "a positive finite number");
  check_log_b(log_b, p.y.n);
  check_len("lse", lse.size(), p.x.n);
#pragma omp parallel for num_threads(ctx.resolved_threads())
  for (int64_t i = 0; i < p.x.n; ++i) lse[i] = static_cast<float>(row_lse(p, scale, log_b, i));
}

void softmax_column_sums(const ScoreProblem& p, float scale, std::span<const float> log_b, std::span<double> col_sums,
                         std::span<float> lse, const Context& ctx, const ScoreOptions& opt) {
  p.validate();
  opt.validate();
  require(scale > 0 && std::isfinite(scale), "scale", scale, "a positive finite number");
  check_log_b(log_b, p.y.n);
  check_len("col_sums", col_sums.size(), p.y.n);
  check_len("lse", lse.size(), p.x.n);
  std::vector<double> l(p.x.n);
#pragma omp parallel for num_threads(ctx.resolved_threads())
  for (int64_t i = 0; i < p.x.n; ++i) l[i] = row_lse(p, scale, log_b, i);
  std::fill(col_sums.begin(), col_sums.end(), 0.0);
  for (int64_t i = 0; i < p.x.n; ++i) {
    lse[i] = static_cast<float>(l[i]);
    if (l[i] == kNegInf) continue;
    for (int64_t j = 0; j < p.y.n; ++j) col_sums[j] += std::exp(logit(p, scale, log_b, i, j) - l[i]);
  }
}

void row_gumbel_argmax(const ScoreProblem& p, float scale, std::span<const float> log_b, uint64_t seed,
                       std::span<int64_t> index, const Context& ctx, const ScoreOptions& opt, uint64_t row_offset) {
  p.validate();
  opt.validate();
  require(scale > 0 && std::isfinite(scale), "scale", scale, "a positive finite number");
  check_log_b(log_b, p.y.n);
  check_len("index", index.size(), p.x.n);
  require_some_column(p, log_b);
#pragma omp parallel for num_threads(ctx.resolved_threads())
  for (int64_t i = 0; i < p.x.n; ++i) {
    double best = kNegInf;
    int64_t arg = -1;
    for (int64_t j = 0; j < p.y.n; ++j) {
      const double l = logit(p, scale, log_b, i, j);
      if (l == kNegInf) continue;
      const double v = l + gumbel_at(seed, row_offset + i, j);
      if (arg < 0 || v > best) best = v, arg = j;
    }
    index[i] = arg;
  }
}

void kernel_row_logsumexp(PointsView x, PointsView y, double alpha, std::span<const float> log_w, std::span<float> out,
                          const Context& ctx, const ScoreOptions& opt) {
  check_pair(x, y);
  opt.validate();
  require(alpha > 0 && std::isfinite(alpha), "alpha", alpha, "a positive finite number");
  check_log_b(log_w, y.n);
  check_len("out", out.size(), x.n);
#pragma omp parallel for num_threads(ctx.resolved_threads())
  for (int64_t i = 0; i < x.n; ++i) {
    double mx = kNegInf;
    std::vector<double> v(y.n);
    for (int64_t j = 0; j < y.n; ++j) {
      v[j] = (log_w.empty() ? 0.0 : log_w[j]) - alpha * sqdist(x.row(i), y.row(j), x.d);
      mx = std::max(mx, v[j]);
    }
    double s = 0;
    if (mx != kNegInf) for (double t : v) s += std::exp(t - mx);
    out[i] = static_cast<float>(mx == kNegInf ? kNegInf : mx + std::log(s));
  }
}

void kernel_row_sums(PointsView x, PointsView y, std::span<const double> alphas, std::span<double> out,
                     const Context& ctx, const ScoreOptions& opt) {
  check_pair(x, y);
  opt.validate();
  for (double a : alphas) require(a > 0 && std::isfinite(a), "alphas", a, "positive finite numbers");
  const int64_t A = static_cast<int64_t>(alphas.size());
  check_len("out", out.size(), x.n * A);
#pragma omp parallel for num_threads(ctx.resolved_threads())
  for (int64_t i = 0; i < x.n; ++i) {
    for (int64_t a = 0; a < A; ++a) out[i * A + a] = 0;
    for (int64_t j = 0; j < y.n; ++j) {
      const double d2 = sqdist(x.row(i), y.row(j), x.d);
      for (int64_t a = 0; a < A; ++a) out[i * A + a] += std::exp(-alphas[a] * d2);
    }
  }
}

void distance_row_sums(PointsView x, PointsView y, std::span<double> out, const Context& ctx, const ScoreOptions& opt) {
  check_pair(x, y);
  opt.validate();
  check_len("out", out.size(), x.n);
#pragma omp parallel for num_threads(ctx.resolved_threads())
  for (int64_t i = 0; i < x.n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < y.n; ++j) s += std::sqrt(sqdist(x.row(i), y.row(j), x.d));
    out[i] = s;
  }
}

void score_matrix(const ScoreProblem& p, std::span<float> out, const Context& ctx, const ScoreOptions& opt) {
  p.validate();
  opt.validate();
  check_len("out", out.size(), p.x.n * p.y.n);
#pragma omp parallel for num_threads(ctx.resolved_threads())
  for (int64_t i = 0; i < p.x.n; ++i)
    for (int64_t j = 0; j < p.y.n; ++j) out[i * p.y.n + j] = static_cast<float>(score(p, i, j));
}

}  // namespace otgen
