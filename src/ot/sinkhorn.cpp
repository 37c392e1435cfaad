// Log-domain Sinkhorn (otgen/ot/sinkhorn.h). Internal potentials: F_i = f_i - |x_i|^2/2,
// G_j = g_j - |y_j|^2/2, so that (f_i + g_j - C_ij) / eps = (F_i + G_j + S_ij) / eps with S_ij = <x_i, y_j>.
// FP exceptions are never trapped here; without this GCC refuses to if-convert the clamps of
// fast_exp in read-modify-write loops, and the column sweep stays scalar.
#pragma GCC optimize("no-trapping-math")

#include "otgen/ot/sinkhorn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <string>

#include "ot/cost_matrix.h"
#include "ot/fast_exp.h"
#include "ot/jv.h"
#include "ot/weights.h"
#include "otgen/core/error.h"
#include "otgen/core/memory.h"
#include "otgen/core/progress.h"
#include "otgen/core/rng.h"

namespace otgen {

void SinkhornOptions::validate() const {
  require(std::isfinite(epsilon) && epsilon > 0, "epsilon", epsilon, "a positive finite number");
  require(std::isfinite(tol) && tol > 0, "tol", tol, "a positive finite number");
  require(max_iterations > 0, "max_iterations", max_iterations, "a positive integer");
  require(check_every > 0, "check_every", check_every, "a positive integer");
  require(std::isfinite(scaling_start) && scaling_start > 0, "scaling_start", scaling_start, "a positive finite number");
  require(scaling_decay > 0 && scaling_decay < 1, "scaling_decay", scaling_decay, "a number in (0, 1)");
  require(std::isfinite(stage_tol) && stage_tol > 0, "stage_tol", stage_tol, "a positive finite number");
  require(stage_max_iterations > 0, "stage_max_iterations", stage_max_iterations, "a positive integer");
  require(dense_max_bytes >= 0, "dense_max_bytes", dense_max_bytes, "a non-negative integer");
  scores.validate();
}

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();


std::vector<double> logs(const std::vector<double>& w) {
  std::vector<double> l(w.size());
  for (size_t k = 0; k < w.size(); ++k) l[k] = w[k] > 0 ? std::log(w[k]) : kNegInf;
  return l;
}

// a[j] += exp(rt + s[j] * inv + gt[j]) for j in [c0, c1): the dense column sweep's inner loop.
void accumulate_row(double* __restrict a, const float* __restrict s, const double* __restrict gt, double rt,
                    double inv, int64_t c0, int64_t c1) {
  const int64_t len = c1 - c0;
  a += c0, s += c0, gt += c0;
#pragma omp simd
  for (int64_t j = 0; j < len; ++j) {
    const double e = detail::fast_exp(rt + s[j] * inv + gt[j]);
    a[j] = a[j] + e;
  }
}

// One solver back end: updates F (rows) or G (columns) at a given eps.
class Kernel {
 public:
  virtual ~Kernel() = default;
  // F <- row update from (F, G); returns the L1 row error of the input pair sum_i a_i |r_i - 1|.
  virtual double update_rows(double eps, std::vector<double>& F, const std::vector<double>& G) = 0;
  virtual void update_cols(double eps, const std::vector<double>& F, std::vector<double>& G) = 0;
  // sum_ij P_ij S_ij for the plan of (F, G).
  virtual double plan_inner(double eps, const std::vector<double>& F, const std::vector<double>& G) = 0;
};

// Dense: S stored (n x m float). Sums shifted by the previous potentials, in double with fast_exp.
class DenseKernel final : public Kernel {
 public:
  DenseKernel(PointsView x, PointsView y, const std::vector<double>& loga, const std::vector<double>& logb,
              const Context& ctx, const ScoreOptions& opt)
      : n_(x.n), m_(y.n), loga_(loga), logb_(logb),
        // Matrices under 2^20 entries run on one thread: each half-iteration opens parallel regions,
        // and their barriers cost more than the sweep, far more when another process holds a core
        // (measured: 512 x 512 took 0.18 s on 1 thread, 3 s on 2 threads of a loaded 2-core machine).
        threads_(x.n * y.n < (int64_t{1} << 20) ? 1 : ctx.resolved_threads()),
        s_(static_cast<size_t>(x.n * y.n)) {
    score_matrix(ScoreProblem{x, y, {}}, s_, ctx, opt);
  }
  const std::vector<float>& scores() const { return s_; }

  double update_rows(double eps, std::vector<double>& F, const std::vector<double>& G) override {
    const double inv = 1.0 / eps;
    std::vector<double> colterm(m_);
    for (int64_t j = 0; j < m_; ++j) colterm[j] = logb_[j] == kNegInf ? kNegInf : G[j] * inv + logb_[j];
    // Per-row terms summed serially afterwards: the result does not depend on the OpenMP reduction order.
    std::vector<double> row_err(n_, 0.0);
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int64_t i = 0; i < n_; ++i) {
      const float* srow = s_.data() + i * m_;
      const double base = F[i] * inv;
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < m_; ++j) sum += detail::fast_exp(base + srow[j] * inv + colterm[j]);
      double lse;  // log sum_j exp(base + ...), relative to the shift F_i / eps
      if (std::isfinite(sum) && sum > 1e-280) {
        lse = std::log(sum);
      } else {
        double mx = kNegInf;
        for (int64_t j = 0; j < m_; ++j) mx = std::max(mx, base + srow[j] * inv + colterm[j]);
        double s2 = 0;
        for (int64_t j = 0; j < m_; ++j) s2 += std::exp(base + srow[j] * inv + colterm[j] - mx);
        lse = mx + std::log(s2);
      }
      if (loga_[i] != kNegInf) row_err[i] = std::exp(loga_[i]) * std::abs(std::expm1(lse));
      F[i] -= eps * lse;
    }
    double err = 0;
    for (double e : row_err) err += e;
    return err;
  }

  void update_cols(double eps, const std::vector<double>& F, std::vector<double>& G) override {
    const double inv = 1.0 / eps;
    std::vector<double> rowterm(n_), gterm(m_), acc(m_, 0.0);
    for (int64_t i = 0; i < n_; ++i) rowterm[i] = loga_[i] == kNegInf ? kNegInf : F[i] * inv + loga_[i];
    for (int64_t j = 0; j < m_; ++j) gterm[j] = G[j] * inv;
    // Each thread owns a contiguous range of columns and streams every row over it.
    const int64_t chunk = ((m_ + threads_ - 1) / threads_ + 7) / 8 * 8;
#pragma omp parallel num_threads(threads_)
    {
#pragma omp for schedule(static)
      for (int64_t c0 = 0; c0 < m_; c0 += chunk) {
        const int64_t c1 = std::min(m_, c0 + chunk);
        double* a = acc.data();
        const double* gt = gterm.data();
        for (int64_t i = 0; i < n_; ++i) {
          if (rowterm[i] == kNegInf) continue;
          const float* srow = s_.data() + i * m_;
          const double rt = rowterm[i];
          accumulate_row(a, srow, gt, rt, inv, c0, c1);
        }
      }
    }
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 16)
    for (int64_t j = 0; j < m_; ++j) {
      if (logb_[j] == kNegInf) continue;
      double lse;
      if (std::isfinite(acc[j]) && acc[j] > 1e-280) {
        lse = std::log(acc[j]);
      } else {  // exact shift, strided (rare: early iterations at small eps)
        double mx = kNegInf;
        for (int64_t i = 0; i < n_; ++i) mx = std::max(mx, rowterm[i] + s_[i * m_ + j] * inv + gterm[j]);
        double s2 = 0;
        for (int64_t i = 0; i < n_; ++i) s2 += std::exp(rowterm[i] + s_[i * m_ + j] * inv + gterm[j] - mx);
        lse = mx + std::log(s2);
      }
      G[j] -= eps * lse;
    }
  }

  double plan_inner(double eps, const std::vector<double>& F, const std::vector<double>& G) override {
    const double inv = 1.0 / eps;
    std::vector<double> colterm(m_);
    for (int64_t j = 0; j < m_; ++j) colterm[j] = logb_[j] == kNegInf ? kNegInf : G[j] * inv + logb_[j];
    std::vector<double> row_total(n_, 0.0);
#pragma omp parallel for num_threads(threads_)
    for (int64_t i = 0; i < n_; ++i) {
      if (loga_[i] == kNegInf) continue;
      const float* srow = s_.data() + i * m_;
      const double base = F[i] * inv + loga_[i];
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < m_; ++j) s += detail::fast_exp(base + srow[j] * inv + colterm[j]) * srow[j];
      row_total[i] = s;
    }
    double total = 0;
    for (double t : row_total) total += t;
    return total;
  }

 private:
  int64_t n_, m_;
  const std::vector<double>& loga_;
  const std::vector<double>& logb_;
  int threads_;
  std::vector<float> s_;
};

// Online: one engine row_logsumexp per half-iteration; the matrix is never stored.
class OnlineKernel final : public Kernel {
 public:
  OnlineKernel(PointsView x, PointsView y, const std::vector<double>& loga, const std::vector<double>& logb,
               const Context& ctx, const ScoreOptions& opt)
      : x_(x), y_(y), loga_(loga), logb_(logb), ctx_(ctx), opt_(opt), la_(to_float(loga)), lb_(to_float(logb)) {}

  double update_rows(double eps, std::vector<double>& F, const std::vector<double>& G) override {
    return half(eps, x_, y_, la_, lb_, loga_, G, F);
  }
  void update_cols(double eps, const std::vector<double>& F, std::vector<double>& G) override {
    half(eps, y_, x_, lb_, la_, logb_, F, G);
  }
  double plan_inner(double eps, const std::vector<double>& F, const std::vector<double>& G) override {
    // Row blocks of S from the engine; P_ij = exp((F_i + G_j + S_ij)/eps + log a_i + log b_j).
    const int64_t block = std::max<int64_t>(1, std::min<int64_t>(x_.n, (int64_t{1} << 22) / y_.n));
    std::vector<float> s(static_cast<size_t>(block * y_.n));
    const double inv = 1.0 / eps;
    double total = 0;
    for (int64_t i0 = 0; i0 < x_.n; i0 += block) {
      const int64_t rows = std::min(block, x_.n - i0);
      score_matrix(ScoreProblem{PointsView{x_.row(i0), rows, x_.d}, y_, {}}, std::span<float>(s.data(), rows * y_.n),
                   ctx_, opt_);
      for (int64_t i = 0; i < rows; ++i) {
        if (loga_[i0 + i] == kNegInf) continue;
        const double base = F[i0 + i] * inv + loga_[i0 + i];
        for (int64_t j = 0; j < y_.n; ++j)
          if (logb_[j] != kNegInf) {
            const double sv = s[i * y_.n + j];
            total += std::exp(base + (G[j] + sv) * inv + logb_[j]) * sv;
          }
      }
    }
    return total;
  }

 private:
  static std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

  // out_i <- -eps LSE_j(logw_j + (other_j + S_ij)/eps); returns sum_i exp(log_self_i) |r_i - 1|.
  double half(double eps, PointsView rows, PointsView cols, const std::vector<float>& /*log_self*/,
              const std::vector<float>& log_other, const std::vector<double>& log_self_d,
              const std::vector<double>& other, std::vector<double>& out) {
    // h_j = other_j - c, centred on the supported mean to keep the float scores small.
    double c = 0;
    int64_t cnt = 0;
    for (size_t j = 0; j < other.size(); ++j)
      if (log_other[j] != -std::numeric_limits<float>::infinity()) c += other[j], ++cnt;
    c = cnt ? c / static_cast<double>(cnt) : 0.0;
    std::vector<float> h(other.size());
    for (size_t j = 0; j < other.size(); ++j) h[j] = static_cast<float>(other[j] - c);
    std::vector<float> lse(static_cast<size_t>(rows.n));
    row_logsumexp(ScoreProblem{rows, cols, h}, static_cast<float>(1.0 / eps), log_other, lse, ctx_, opt_);
    double err = 0;
    for (int64_t i = 0; i < rows.n; ++i) {
      const double fresh = -eps * static_cast<double>(lse[i]) - c;
      if (log_self_d[i] != kNegInf) err += std::exp(log_self_d[i]) * std::abs(std::expm1((out[i] - fresh) / eps));
      out[i] = fresh;
    }
    return err;
  }

  PointsView x_, y_;
  const std::vector<double>& loga_;
  const std::vector<double>& logb_;
  const Context& ctx_;
  ScoreOptions opt_;
  std::vector<float> la_, lb_;
};

bool all_finite(const std::vector<double>& v) {
  for (double t : v)
    if (!std::isfinite(t)) return false;
  return true;
}

void check_pair(PointsView x, PointsView y) {
  require(x.n >= 1, "x", "n = " + std::to_string(x.n), "at least one point");
  require(y.n >= 1, "y", "n = " + std::to_string(y.n), "at least one point");
  require(x.d == y.d, "y", "dimension " + std::to_string(y.d), "the dimension of x, " + std::to_string(x.d));
  require_finite(x, "x");
  require_finite(y, "y");
}

}  // namespace

double cost_stddev(PointsView x, PointsView y, const Context& ctx) {
  check_pair(x, y);
  return detail::cost_moments(x, y, ctx, {}).stddev;
}

namespace {

void check_warm_start(const SinkhornResult& w, int64_t n, int64_t m) {
  require(static_cast<int64_t>(w.f.size()) == n && static_cast<int64_t>(w.g.size()) == m, "warm_start",
          "potentials of lengths " + std::to_string(w.f.size()) + ", " + std::to_string(w.g.size()),
          "lengths n = " + std::to_string(n) + ", m = " + std::to_string(m));
  require_finite(std::span<const double>(w.f), "warm_start.f");
  require_finite(std::span<const double>(w.g), "warm_start.g");
}

// The back end (res.dense: when asked, or when the n x m float matrix fits dense_max_bytes), and
// res.cost_std when relative epsilon or epsilon scaling needs it (the same bits in either mode).
std::unique_ptr<Kernel> make_kernel(PointsView x, PointsView y, const std::vector<double>& loga,
                                    const std::vector<double>& logb, const Context& ctx, const SinkhornOptions& opt,
                                    SinkhornResult& res) {
  const int64_t n = x.n, m = y.n;
  const bool dense = opt.mode == SinkhornMode::Dense ||
                     (opt.mode == SinkhornMode::Auto && 4 * static_cast<double>(n) * m <= opt.dense_max_bytes);
  res.dense = dense;
  const bool need_std = opt.relative_epsilon || opt.eps_scaling;
  if (!dense) {
    if (need_std) res.cost_std = detail::cost_moments(x, y, ctx, opt.scores).stddev;
    return std::make_unique<OnlineKernel>(x, y, loga, logb, ctx, opt.scores);
  }
  require_memory("mode", "dense", 4.0 * static_cast<double>(n) * static_cast<double>(m),
                 "the " + std::to_string(n) + " x " + std::to_string(m) + " float matrix of the dense mode");
  auto dk = std::make_unique<DenseKernel>(x, y, loga, logb, ctx, opt.scores);
  if (need_std) res.cost_std = detail::cost_moments(x, y, ctx, opt.scores, true, dk->scores()).stddev;
  return dk;
}

// The epsilons of the stages: scaling_start * std(C), decaying by scaling_decay while above eps
// (with eps scaling), then eps.
std::vector<double> epsilon_stages(const SinkhornOptions& opt, double eps, std::optional<double> cost_std) {
  std::vector<double> stages;
  if (opt.eps_scaling && cost_std) {
    for (double e = opt.scaling_start * *cost_std; e > eps; e *= opt.scaling_decay) stages.push_back(e);
  }
  stages.push_back(eps);
  return stages;
}

struct Sweeps {
  int64_t iterations = 0;
  double err = std::numeric_limits<double>::infinity();  // the row error of the returned pair
  bool failed = false, converged = false;
};

// The stages' alternating row and column updates of (F, G); on a non-finite update the last finite
// pair is kept (failed), on meeting the tolerance the measured pair (converged at the last stage).
Sweeps run_stages(Kernel& kernel, const std::vector<double>& stages, const SinkhornOptions& opt,
                  std::vector<double>& F, std::vector<double>& G, Progress& progress) {
  Sweeps r;
  std::vector<double> F_prev = F, G_prev = G;
  for (size_t s = 0; s < stages.size() && !r.failed && !r.converged; ++s) {
    const bool last = s + 1 == stages.size();
    const double e = stages[s];
    const double stage_tol = last ? opt.tol : std::max(opt.tol, opt.stage_tol);
    const int64_t cap =
        last ? opt.max_iterations - r.iterations : std::min(opt.stage_max_iterations, opt.max_iterations - r.iterations);
    bool col_done = false;  // a column update at this eps has happened: the row error is the full error
    for (int64_t it = 0; it <= cap; ++it) {
      F_prev = F;
      r.err = kernel.update_rows(e, F, G);
      if (!all_finite(F) || std::isnan(r.err)) {
        F = F_prev;
        r.failed = true;
        break;
      }
      if (col_done && (it % opt.check_every == 0 || it == cap) && r.err <= stage_tol) {
        F = F_prev;  // the measured pair
        r.converged = last;
        break;
      }
      if (it == cap) {  // cap reached: keep the pair (F_prev, G) whose error was just measured
        F = F_prev;
        break;
      }
      G_prev = G;
      kernel.update_cols(e, F, G);
      if (!all_finite(G)) {
        F = F_prev;
        G = G_prev;
        r.failed = true;
        break;
      }
      col_done = true;
      ++r.iterations;
      if (progress.enabled()) {
        progress.set_metric("err", r.err);
        progress.update(r.iterations, "eps " + to_text(e));
      }
    }
  }
  return r;
}

// termination, message, iterations and marginal_error of the sweeps (a failed run's error measured
// by one more row sweep of the returned pair).
void set_termination(const Sweeps& r, Kernel& kernel, double eps, const std::vector<double>& F,
                     const std::vector<double>& G, const SinkhornOptions& opt, SinkhornResult& res) {
  res.iterations = r.iterations;
  double err = r.err;
  if (r.failed) {
    res.termination = Termination::NumericalFailure;
    res.message =
        "non-finite potential at iteration " + std::to_string(r.iterations) + "; returning the last finite iterate";
    // The error of the returned pair is unknown without another sweep; measure it when finite.
    std::vector<double> Ft = F;
    err = kernel.update_rows(eps, Ft, G);
  } else if (r.converged) {
    res.termination = Termination::Converged;
    res.message = "marginal error " + to_text(err) + " <= tol " + to_text(opt.tol) + " after " +
                  std::to_string(r.iterations) + " iterations";
  } else {
    res.termination = Termination::MaxSteps;
    res.message = "max_iterations = " + std::to_string(opt.max_iterations) + " reached with marginal error " + to_text(err);
  }
  res.marginal_error = err;
}

// Potentials in the cost convention (g centred on its support), the plan's cost and the dual.
void set_potentials(const std::vector<double>& F, const std::vector<double>& G, const std::vector<double>& a,
                    const std::vector<double>& b, const std::vector<float>& nx, const std::vector<float>& ny,
                    Kernel& kernel, double eps, bool failed, SinkhornResult& res) {
  const int64_t n = static_cast<int64_t>(F.size()), m = static_cast<int64_t>(G.size());
  res.f.resize(n);
  res.g.resize(m);
  for (int64_t i = 0; i < n; ++i) res.f[i] = F[i] + 0.5 * nx[i];
  for (int64_t j = 0; j < m; ++j) res.g[j] = G[j] + 0.5 * ny[j];
  double gm = 0, cnt = 0;
  for (int64_t j = 0; j < m; ++j)
    if (b[j] > 0) gm += res.g[j], cnt += 1;
  gm /= cnt;
  for (double& v : res.g) v -= gm;
  for (double& v : res.f) v += gm;
  if (!failed) {
    // <P, C> = sum_i |x_i|^2/2 (P1)_i + sum_j |y_j|^2/2 (P^T 1)_j - <P, S>; columns are exact and rows
    // within the measured error, so the norm terms use the row sums implied by the measured pair.
    std::vector<double> Ft = F;
    kernel.update_rows(eps, Ft, G);
    double rows_term = 0, cols_term = 0;
    for (int64_t i = 0; i < n; ++i) rows_term += a[i] * std::exp((F[i] - Ft[i]) / eps) * 0.5 * nx[i];
    for (int64_t j = 0; j < m; ++j) cols_term += b[j] * 0.5 * ny[j];
    res.transport_cost = rows_term + cols_term - kernel.plan_inner(eps, F, G);
  } else {
    res.transport_cost = std::numeric_limits<double>::quiet_NaN();
  }
  for (int64_t i = 0; i < n; ++i) res.dual_objective += a[i] * res.f[i];
  for (int64_t j = 0; j < m; ++j) res.dual_objective += b[j] * res.g[j];
  if (!failed && !(std::isfinite(res.transport_cost) && std::isfinite(res.dual_objective))) {
    res.termination = Termination::NumericalFailure;
    res.message = "the plan's cost is not finite (epsilon " + to_text(eps) + " is too small for costs of std " +
                  to_text(res.cost_std.value_or(0.0)) + "?); " + res.message;
  }
}

}  // namespace

SinkhornResult sinkhorn(PointsView x, PointsView y, std::span<const double> a_in, std::span<const double> b_in,
                        const Context& ctx, const SinkhornOptions& opt, const SinkhornResult* warm_start) {
  opt.validate();
  ctx.validate();
  check_pair(x, y);
  const int64_t n = x.n, m = y.n;
  const std::vector<double> a = checked_weights(a_in, n, "a"), b = checked_weights(b_in, m, "b");
  const std::vector<double> loga = logs(a), logb = logs(b);
  const std::vector<float> nx = squared_norms(x), ny = squared_norms(y);
  if (warm_start) check_warm_start(*warm_start, n, m);

  SinkhornResult res;
  const std::unique_ptr<Kernel> kernel = make_kernel(x, y, loga, logb, ctx, opt, res);
  const double eps = opt.relative_epsilon ? opt.epsilon * *res.cost_std : opt.epsilon;
  if (!(eps > 0 && std::isfinite(eps)))
    fail_argument("epsilon", to_text(eps) + " (absolute; std(C) = " + to_text(res.cost_std.value_or(0)) + ")",
                  "a positive finite absolute epsilon (all points identical?)");
  res.epsilon = eps;

  std::vector<double> F(n, 0.0), G(m, 0.0);
  if (warm_start) {
    for (int64_t i = 0; i < n; ++i) F[i] = warm_start->f[i] - 0.5 * nx[i];
    for (int64_t j = 0; j < m; ++j) G[j] = warm_start->g[j] - 0.5 * ny[j];
  }
  const std::vector<double> stages = epsilon_stages(opt, eps, res.cost_std);
  res.stages = static_cast<int64_t>(stages.size());
  Progress progress("sinkhorn", opt.max_iterations, ctx);
  const Sweeps sweeps = run_stages(*kernel, stages, opt, F, G, progress);
  progress.finish();
  set_termination(sweeps, *kernel, eps, F, G, opt, res);
  set_potentials(F, G, a, b, nx, ny, *kernel, eps, sweeps.failed, res);
  return res;
}

std::vector<int64_t> sinkhorn_pairs(PointsView x, PointsView y, std::span<const double> b_in, const SinkhornResult& plan,
                                    uint64_t seed, bool round_to_permutation, const Context& ctx) {
  check_pair(x, y);
  const int64_t n = x.n, m = y.n;
  const std::vector<double> b = checked_weights(b_in, m, "b");
  require(static_cast<int64_t>(plan.f.size()) == n && static_cast<int64_t>(plan.g.size()) == m, "plan",
          "potentials of lengths " + std::to_string(plan.f.size()) + ", " + std::to_string(plan.g.size()),
          "the batch sizes " + std::to_string(n) + ", " + std::to_string(m));
  require(plan.epsilon > 0 && std::isfinite(plan.epsilon), "plan.epsilon", plan.epsilon, "a positive finite number");
  require_finite(std::span<const double>(plan.g), "plan.g");
  if (round_to_permutation)
    require(n == m, "round_to_permutation", "true with n = " + std::to_string(n) + ", m = " + std::to_string(m),
            "n == m");
  // Row i: j ~ b_j exp((g_j - C_ij)/eps) ∝ exp((S_ij + G_j)/eps + log b_j), G_j = g_j - |y_j|^2/2.
  const std::vector<float> ny = squared_norms(y);
  std::vector<double> Gd(m);
  double c = 0;
  for (int64_t j = 0; j < m; ++j) Gd[j] = plan.g[j] - 0.5 * ny[j], c += Gd[j];
  c /= static_cast<double>(m);
  std::vector<float> h(m), logb(m);
  for (int64_t j = 0; j < m; ++j) {
    h[j] = static_cast<float>(Gd[j] - c);
    logb[j] = b[j] > 0 ? static_cast<float>(std::log(b[j])) : -std::numeric_limits<float>::infinity();
  }
  const float scale = static_cast<float>(1.0 / plan.epsilon);
  std::vector<int64_t> idx(n);
  row_gumbel_argmax(ScoreProblem{x, y, h}, scale, logb, seed, idx, ctx);
  if (!round_to_permutation) return idx;

  // Collisions: each column keeps the row with the largest perturbed score.
  auto perturbed = [&](int64_t i, int64_t j) {
    double s = 0;
    for (int64_t t = 0; t < x.d; ++t) s += static_cast<double>(x.row(i)[t]) * y.row(j)[t];
    return (s + h[j]) * scale + logb[j] + gumbel_at(seed, static_cast<uint64_t>(i), static_cast<uint64_t>(j));
  };
  std::vector<int64_t> owner(m, -1);
  std::vector<double> best(m, kNegInf);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = idx[i];
    const double v = perturbed(i, j);
    if (owner[j] < 0 || v > best[j]) owner[j] = i, best[j] = v;
  }
  std::vector<int64_t> free_rows, free_cols;
  for (int64_t i = 0; i < n; ++i)
    if (owner[idx[i]] != i) free_rows.push_back(i);
  for (int64_t j = 0; j < m; ++j)
    if (owner[j] < 0) free_cols.push_back(j);
  const int64_t k = static_cast<int64_t>(free_rows.size());
  if (k == 0) return idx;
  // Cost -(S_ij + G_j) on the leftover rows and columns (row constants dropped); S by the engine.
  Points xr(k, x.d), yc(k, y.d);
  for (int64_t r = 0; r < k; ++r) {
    std::copy(x.row(free_rows[r]), x.row(free_rows[r]) + x.d, xr.row(r));
    std::copy(y.row(free_cols[r]), y.row(free_cols[r]) + y.d, yc.row(r));
  }
  std::vector<float> s(static_cast<size_t>(k * k));
  score_matrix(ScoreProblem{xr, yc, {}}, s, ctx);
  std::vector<double> cost(static_cast<size_t>(k * k));
  for (int64_t r = 0; r < k; ++r)
    for (int64_t q = 0; q < k; ++q) cost[r * k + q] = -(static_cast<double>(s[r * k + q]) + Gd[free_cols[q]]);
  const std::vector<int64_t> sub = detail::jonker_volgenant(cost.data(), k);
  for (int64_t r = 0; r < k; ++r) idx[free_rows[r]] = free_cols[sub[r]];
  return idx;
}

}  // namespace otgen
