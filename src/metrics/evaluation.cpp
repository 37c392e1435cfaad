#include "otgen/metrics/evaluation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "metrics/ustat.h"
#include "otgen/core/error.h"
#include "otgen/metrics/metrics.h"
#include "otgen/core/progress.h"

namespace otgen {

namespace {

const std::vector<std::string> kMetrics{"energy", "mmd", "sw2", "w1", "fd", "fd-pca", "w2", "prd"};

bool wants(const EvalOptions& o, std::string_view m) {
  return std::find(o.metrics.begin(), o.metrics.end(), m) != o.metrics.end();
}

// sum_i c_i (c_i - 1) for the copy counts c_i of the resampled rows.
double copies_of(const std::vector<int64_t>& idx, int64_t n) {
  std::vector<int64_t> count(n, 0);
  for (int64_t i : idx) ++count[i];
  double total = 0;
  for (int64_t c : count) total += static_cast<double>(c) * static_cast<double>(c - 1);
  return total;
}

Points gather(PointsView p, const std::vector<int64_t>& idx) {
  Points out(static_cast<int64_t>(idx.size()), p.d);
  for (size_t i = 0; i < idx.size(); ++i) std::copy(p.row(idx[i]), p.row(idx[i]) + p.d, out.row(static_cast<int64_t>(i)));
  return out;
}

// The choices every replicate shares with the point estimate.
struct Fixed {
  std::vector<double> alphas;      // mmd
  std::optional<PcaBasis> basis;   // fd-pca
};

// The metrics with intervals on (x, y), whose within-sample pairs of copies number copies_x / copies_y
// (0 for the data themselves), as (key, value) in the order of o.metrics. per_bandwidth: MMD^2 by bandwidth.
std::vector<std::pair<std::string, double>> interval_metrics(PointsView x, PointsView y, double copies_x,
                                                             double copies_y, const Fixed& f, const EvalOptions& o,
                                                             const Context& ctx,
                                                             std::vector<double>* per_bandwidth = nullptr) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& m : o.metrics) {
    if (m == "energy") out.emplace_back("energy", detail::energy_distance_excluding(x, y, copies_x, copies_y, ctx));
    if (m == "mmd") {
      const std::vector<double> v = detail::mmd2_excluding(x, y, f.alphas, copies_x, copies_y, ctx);
      double total = 0;
      for (double t : v) total += t;
      out.emplace_back("mmd2", total);
      if (per_bandwidth) *per_bandwidth = v;
    }
    if (m == "sw2") out.emplace_back("sw2", sliced_w2(x, y, o.projections, ctx.seed));
    if (m == "w1") out.emplace_back("mean_marginal_w1", mean_marginal_w1(x, y));
    if (m == "fd") out.emplace_back("frechet", frechet_distance(x, y));
    if (m == "fd-pca") out.emplace_back("frechet_pca", frechet_distance(x, y, *f.basis));
  }
  return out;
}

void check_input(PointsView p, const std::string& name, int64_t d, const std::string& expected_dim) {
  require(p.d == d, name, "points of dimension " + std::to_string(p.d), expected_dim);
  require(p.n >= 2, name, std::to_string(p.n) + " points", "at least 2");
  require_finite(p, name);
}

// The checks of fd-pca's training set and --pca-dim.
void check_pca_data(PointsView x, PointsView pca_data, const EvalOptions& o) {
  const bool pca = wants(o, "fd-pca");
  const bool has_pca_data = pca_data.n > 0 || pca_data.d > 0;
  if (pca && !has_pca_data)
    fail_argument(o.arg("pca_data"), o.cli_names ? "(not given)" : "None",
                  "the training set whose PCA basis fd-pca uses: (N, d) points");
  if (!pca && has_pca_data)
    fail_argument(o.arg("pca_data"), "a training set", "it only with fd-pca among the metrics");
  if (!pca && o.pca_dim) fail_argument(o.arg("pca_dim"), *o.pca_dim, "it only with fd-pca among the metrics");
  if (pca) {
    check_input(pca_data, o.arg("pca_data"), x.d, "the samples' dimension " + std::to_string(x.d));
    const int64_t limit = std::min(pca_data.d, pca_data.n - 1);
    if (o.pca_dim)
      require(*o.pca_dim <= limit, o.arg("pca_dim"), *o.pca_dim,
              "at most min(d, N - 1) = " + std::to_string(limit) + " for N = " + std::to_string(pca_data.n) +
                  " training points of dimension d = " + std::to_string(pca_data.d));
  }
}

// The checks of energy and mmd (values the score engine can square) and prd (k below both sizes).
void check_score_metrics(PointsView x, PointsView y, const EvalOptions& o) {
  if (wants(o, "energy") || wants(o, "mmd")) {
    // The score engine forms squared distances in float32: |x - y|^2 <= 4 d max|v|^2 must not overflow.
    const double limit = std::sqrt(static_cast<double>(std::numeric_limits<float>::max()) / (4.0 * static_cast<double>(x.d)));
    for (auto [p, name] : {std::pair{x, "samples"}, std::pair{y, "reference"}}) {
      double big = 0;
      for (float v : p.values()) big = std::max(big, static_cast<double>(std::abs(v)));
      require(big < limit, o.arg(name), "values up to " + to_text(big),
              "|values| below " + to_text(limit) + " for energy and mmd in dimension " + std::to_string(x.d) +
                  " (their float32 squared distances overflow): rescale the data");
    }
  }
  if (wants(o, "prd")) {
    require(y.n > o.k, o.arg("k"), o.k, "less than the reference's " + std::to_string(y.n) + " points");
    require(x.n > o.k, o.arg("k"), o.k, "less than the samples' " + std::to_string(x.n) + " points");
  }
}

// mmd: the RBF bandwidths (the scales times the median distance of x and y) into f, and their record.
void mmd_bandwidths(PointsView x, PointsView y, const EvalOptions& o, Fixed& f, nlohmann::json& j) {
  const double h = median_distance(x, y);
  std::vector<double> sigmas;
  for (double s : o.mmd_scales) {
    sigmas.push_back(s * h);
    f.alphas.push_back(1.0 / (2.0 * sigmas.back() * sigmas.back()));
  }
  for (double a : f.alphas)
    require(a > 0 && std::isfinite(a), o.arg("samples"), "points whose median distance is " + to_text(h),
            "a scale at which the RBF bandwidths 1 / (2 sigma^2) are positive and finite");
  j["mmd_median_distance"] = h;
  j["mmd_scales"] = o.mmd_scales;
  j["mmd_bandwidths"] = sigmas;
  j["mmd_gammas"] = f.alphas;
  j["mmd_estimator"] = "unbiased U-statistic of sum_sigma exp(-|a - b|^2 / (2 sigma^2))";
}

// fd-pca: the training set's basis into f, and its record.
void pca_fixed(PointsView pca_data, const EvalOptions& o, Fixed& f, nlohmann::json& j) {
  f.basis = pca_basis(pca_data, o.pca_dim);
  double kept = 0;
  for (double v : f.basis->variances) kept += v;
  j["frechet_pca_dim"] = f.basis->dim;
  j["frechet_pca_train_points"] = f.basis->train_points;
  j["frechet_pca_explained_variance"] = f.basis->total_variance > 0 ? kept / f.basis->total_variance : 1.0;
}

// The point estimates of every metric.
void point_metrics(PointsView x, PointsView y, const Fixed& f, const EvalOptions& o, const Context& ctx,
                   nlohmann::json& j) {
  std::vector<double> per_bandwidth;
  const auto point = interval_metrics(x, y, 0, 0, f, o, ctx, &per_bandwidth);
  for (const auto& [key, value] : point) j[key] = value;
  if (wants(o, "mmd")) j["mmd2_per_bandwidth"] = per_bandwidth;
  if (wants(o, "sw2")) j["sw2_projections"] = o.projections;
  if (wants(o, "w2")) {
    const ExactW2 w = exact_w2(x, y, o.max_points, ctx.seed, ctx);
    j["w2"] = w.w2;
    j["w2_points"] = w.points;
  }
  if (wants(o, "prd")) {  // real = the reference, fake = the samples
    const PrecisionRecall pr = precision_recall(y, x, o.k, ctx);
    j["precision"] = pr.precision;
    j["recall"] = pr.recall;
    j["prd_k"] = o.k;
  }
}

// The percentile intervals of the metrics that have them, from o.bootstrap resamples of x and y.
void bootstrap_intervals(PointsView x, PointsView y, const Fixed& f, const EvalOptions& o, const Context& ctx,
                         nlohmann::json& j) {
  std::map<std::string, std::vector<double>> replicates;
  Progress progress("bootstrap", o.bootstrap, ctx);
  for (int64_t r = 0; r < o.bootstrap; ++r) {
    const std::vector<int64_t> ix = bootstrap_indices(x.n, ctx.seed, r, 0), iy = bootstrap_indices(y.n, ctx.seed, r, 1);
    const Points xs = gather(x, ix), ys = gather(y, iy);
    for (const auto& [key, value] : interval_metrics(xs, ys, copies_of(ix, x.n), copies_of(iy, y.n), f, o, ctx))
      replicates[key].push_back(value);
    progress.update(r + 1);
  }
  progress.finish();
  std::vector<std::string> without;
  for (const auto& m : o.metrics)
    if (!metric_has_interval(m) && std::find(without.begin(), without.end(), m) == without.end()) without.push_back(m);
  for (const auto& [key, values] : replicates) {
    const Interval ci = percentile_interval(values, o.level);
    j[key + "_ci"] = {ci.lo, ci.hi};
  }
  j["bootstrap"] = {{"replicates", o.bootstrap},
                    {"level", o.level},
                    {"method", "percentile"},
                    {"seed", ctx.seed},
                    {"resampled", "samples and reference, with replacement, each at its own size"},
                    {"no_interval", without}};
  if (o.keep_replicates) j["bootstrap_replicates"] = replicates;
}

}  // namespace

std::string EvalOptions::arg(std::string_view field) const {
  std::string s(field);
  if (!cli_names) return s;
  std::replace(s.begin(), s.end(), '_', '-');
  return "--" + s;
}

void EvalOptions::validate() const {
  std::string known;
  for (const auto& m : kMetrics) known += (known.empty() ? "" : ", ") + m;
  require(!metrics.empty(), arg("metrics"), "an empty list", "one or more of " + known);
  for (const auto& m : metrics)
    require(std::find(kMetrics.begin(), kMetrics.end(), m) != kMetrics.end(), arg("metrics"), "'" + m + "'",
            (cli_names ? "a comma-separated list of " : "a list of ") + known);
  require(projections >= 1, arg("projections"), projections, "a positive integer");
  require(max_points >= 1, arg("max_points"), max_points, "a positive integer");
  require(k >= 1, arg("k"), k, "a positive integer");
  require(!mmd_scales.empty(), arg("mmd_scales"), "an empty list", "at least one bandwidth scale");
  for (double s : mmd_scales) require(s > 0 && std::isfinite(s), arg("mmd_scales"), s, "positive finite scales");
  if (pca_dim) require(*pca_dim >= 1, arg("pca_dim"), *pca_dim, "a positive number of components");
  require(bootstrap >= 0, arg("bootstrap"), bootstrap, "a non-negative number of replicates (0 = no intervals)");
  require(level > 0 && level < 1, arg("level"), level, "a confidence level in (0, 1)");
}

bool metric_has_interval(std::string_view metric) { return metric != "w2" && metric != "prd"; }

nlohmann::json evaluate(PointsView x, PointsView y, PointsView pca_data, const EvalOptions& options,
                        const Context& ctx) {
  options.validate();
  EvalOptions o = options;  // each metric once, in the order first given
  o.metrics.clear();
  for (const auto& m : options.metrics)
    if (!wants(o, m)) o.metrics.push_back(m);
  ctx.validate();
  require(x.d >= 1, o.arg("samples"), "points of dimension " + std::to_string(x.d), "dimension >= 1");
  check_input(x, o.arg("samples"), x.d, "dimension >= 1");
  check_input(y, o.arg("reference"), x.d, "the samples' dimension " + std::to_string(x.d));
  check_pca_data(x, pca_data, o);
  check_score_metrics(x, y, o);

  nlohmann::json j{{"n", x.n}, {"m", y.n}, {"d", x.d}, {"seed", ctx.seed}};
  Fixed f;
  if (wants(o, "mmd")) mmd_bandwidths(x, y, o, f, j);
  if (wants(o, "fd-pca")) pca_fixed(pca_data, o, f, j);
  point_metrics(x, y, f, o, ctx, j);
  if (o.bootstrap > 0) bootstrap_intervals(x, y, f, o, ctx, j);
  return j;
}

}  // namespace otgen
