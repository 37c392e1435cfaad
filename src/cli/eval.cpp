// otgen eval: sample-quality metrics of samples against reference data (SPEC.md §3; the driver is
// otgen/metrics/evaluation.h); prints a table on a terminal, JSON otherwise.
// otgen plot: side-by-side 2-D scatter charts (PLplot) of .npy point sets (e.g. samples of several models).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/chart.h"
#include "otgen/core/error.h"
#include "otgen/metrics/evaluation.h"
#ifdef OTGEN_WITH_FLOW
#include "otgen/flow/features.h"
#endif
#include "otgen/metrics/metrics.h"
#include "otgen/core/npy.h"
#include "otgen/core/record.h"
#include "otgen/core/rng.h"

namespace otgen::cli {
namespace {

struct EvalArgs {
  std::string samples, reference, metrics = "energy,mmd,sw2", out, pca_data, format = "auto", features;
  EvalOptions options;
  int64_t pca_dim = 0;  // used only when --pca-dim is given
  CLI::Option* pca_dim_option = nullptr;
  Context ctx;
};

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * fraction);
  return buf;
}

// The human table: one row per reported value, its interval when there is one.
void print_table(const nlohmann::json& j, const EvalOptions& o, std::ostream& os) {
  const bool boot = j.contains("bootstrap");
  char line[512];
  os << "otgen eval: " << j["n"].get<int64_t>() << " samples vs " << j["m"].get<int64_t>() << " reference points, d = "
     << j["d"].get<int64_t>() << ", seed " << j["seed"].get<uint64_t>() << "\n";
  std::snprintf(line, sizeof line, "%-56s %-14s %s", "metric", "value",
                boot ? (percent(o.level) + " bootstrap interval").c_str() : "");
  os << line << "\n";
  auto row = [&](const std::string& label, const std::string& key) {
    std::string ci;
    if (boot && j.contains(key + "_ci")) ci = "[" + number(j[key + "_ci"][0]) + ", " + number(j[key + "_ci"][1]) + "]";
    else if (boot) ci = "(none)";
    std::snprintf(line, sizeof line, "%-56s %-14s %s", label.c_str(), number(j[key].get<double>()).c_str(), ci.c_str());
    os << line << "\n";
  };
  std::vector<std::string> seen;
  for (const auto& m : o.metrics) {
    if (std::find(seen.begin(), seen.end(), m) != seen.end()) continue;
    seen.push_back(m);
    if (m == "energy") row("energy distance", "energy");
    if (m == "mmd") {
      row("MMD^2 (unbiased, sum of " + std::to_string(j["mmd_bandwidths"].size()) + " RBF kernels)", "mmd2");
      const double h = j["mmd_median_distance"].get<double>();
      for (size_t b = 0; b < j["mmd_bandwidths"].size(); ++b) {
        std::snprintf(line, sizeof line, "%-56s %-14s", ("  sigma = " + number(j["mmd_bandwidths"][b]) + " (" +
                                                          number(j["mmd_scales"][b]) + " x median distance " + number(h) + ")")
                                                             .c_str(),
                      number(j["mmd2_per_bandwidth"][b]).c_str());
        os << line << "\n";
      }
    }
    if (m == "sw2") row("sliced W2 (" + std::to_string(j["sw2_projections"].get<int64_t>()) + " directions)", "sw2");
    if (m == "w1") row("mean marginal W1", "mean_marginal_w1");
    if (m == "fd") row("Frechet distance", "frechet");
    if (m == "fd-features")
      row("Frechet distance, classifier features (" + std::to_string(j["features"]["feature_dim"].get<int64_t>()) +
              " dims, test accuracy " + percent(j["features"]["test_accuracy"].get<double>()) + ")",
          "frechet_features");
    if (m == "fd-pca")
      row("Frechet distance, PCA basis (" + std::to_string(j["frechet_pca_dim"].get<int64_t>()) + " dims, " +
              percent(j["frechet_pca_explained_variance"].get<double>()) + " var.)",
          "frechet_pca");
    if (m == "w2") row("exact W2 (" + std::to_string(j["w2_points"].get<int64_t>()) + "-point subsamples)", "w2");
    if (m == "prd") {
      row("precision (k = " + std::to_string(o.k) + ")", "precision");
      row("recall (k = " + std::to_string(o.k) + ")", "recall");
    }
  }
  if (boot)
    os << "bootstrap: " << j["bootstrap"]["replicates"].get<int64_t>()
       << " replicates (samples and reference resampled with replacement), percentile intervals\n";
}

// fd-features: the Frechet distance of the feature net's features of both sets (with the same
// bootstrap resamples as the other metrics), merged into j as frechet_features[_ci] and "features".
void add_feature_distance(nlohmann::json& j, const EvalArgs& a, const Points& x, const Points& y) {
#ifdef OTGEN_WITH_FLOW
  const features::FeatureNet net = features::FeatureNet::load(a.features, "--features");
  EvalOptions fo = a.options;
  fo.metrics = {"fd"};
  fo.pca_dim.reset();
  const Points fx = net.features(x, a.ctx, "--samples");  // samples first: their error is reported first
  const Points fy = net.features(y, a.ctx, "--reference");
  const nlohmann::json jf = evaluate(fx, fy, PointsView{}, fo, a.ctx);
  for (const char* k : {"n", "m", "seed", "bootstrap"})
    if (jf.contains(k) && !j.contains(k)) j[k] = jf[k];
  j["d"] = x.d;
  j["frechet_features"] = jf["frechet"];
  if (jf.contains("frechet_ci")) j["frechet_features_ci"] = jf["frechet_ci"];
  const nlohmann::json& meta = net.meta();
  j["features"] = {{"model", a.features}, {"feature_dim", net.feature_dim()}, {"dataset", meta.value("dataset", "")},
                   {"test_accuracy", meta.value("test_accuracy", 0.0)}};
#else
  (void)j, (void)x, (void)y;
  fail_argument("--features", "'" + a.features + "'", "a build with flow matching (LibTorch): this otgen has none");
#endif
}

void run_eval(EvalArgs& a) {
  EvalOptions& o = a.options;
  o.cli_names = true;
  const std::vector<std::string> listed = split_list(a.metrics);
  o.metrics.clear();
  for (const auto& m : listed)
    if (m != "fd-features") o.metrics.push_back(m);
  const bool with_features = o.metrics.size() < listed.size();
  require(with_features == !a.features.empty(), with_features ? "--features" : "--metrics",
          with_features ? "(none)" : a.metrics,
          with_features ? "a feature net .pt (otgen features train) for fd-features" : "fd-features among them with --features");
  if (a.pca_dim_option->count() > 0) o.pca_dim = a.pca_dim;
  if (!o.metrics.empty()) o.validate();  // option mistakes first, then the output, then the inputs: all before any metric runs
  a.ctx.validate();
  if (!a.out.empty())
    require_output_file(a.out, "--out", {{"--samples", &a.samples}, {"--reference", &a.reference}, {"--pca-data", &a.pca_data},
                                         {"--features", &a.features}});
  const Points x = read_points_npy(a.samples, "--samples");
  const Points y = read_points_npy(a.reference, "--reference");
  Points train;
  if (!a.pca_data.empty()) train = read_points_npy(a.pca_data, "--pca-data");
  nlohmann::json j = o.metrics.empty() ? nlohmann::json::object()
                                       : evaluate(x, y, a.pca_data.empty() ? PointsView{} : train.view(), o, a.ctx);
  if (with_features) add_feature_distance(j, a, x, y);
  j["samples"] = a.samples;
  j["reference"] = a.reference;
  if (!a.pca_data.empty()) j["pca_data"] = a.pca_data;
  if (!a.out.empty()) write_json(a.out, j);
  o.metrics = listed;  // the table's rows, in the order asked
  if (a.format == "table" || (a.format == "auto" && ::isatty(STDOUT_FILENO)))
    print_table(j, o, std::cout);
  else
    std::cout << j.dump() << "\n";
}

void register_eval(CLI::App& root) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = root.add_subcommand("eval", "sample-quality metrics of samples against reference data");
  cmd->add_option("--samples", a->samples, "samples: (n, d) .npy")->required();
  cmd->add_option("--reference", a->reference, "reference data, ideally held out: (m, d) .npy")->required();
  cmd->add_option("--metrics", a->metrics,
                  "energy (energy distance), mmd (unbiased RBF MMD^2, median-heuristic bandwidths), sw2 (sliced W2), "
                  "w1 (mean marginal W1), fd (Frechet distance of fitted Gaussians), fd-pca (the same in the PCA basis "
                  "of --pca-data), fd-features (the same in the features of --features), w2 (exact W2 on equal-size random "
                  "subsamples), prd (k-NN precision and recall, Kynkaanniemi et al. 2019)")
      ->capture_default_str();
  cmd->add_option("--features", a->features, "fd-features: a feature net .pt (otgen features train)");
  cmd->add_option("--pca-data", a->pca_data, "fd-pca: the training set whose PCA basis is the feature space: (N, d) .npy");
  a->pca_dim_option =
      cmd->add_option("--pca-dim", a->pca_dim, "fd-pca: principal components kept (default min(d, 64, N - 1))");
  cmd->add_option("--projections", a->options.projections, "sw2: random directions")->capture_default_str();
  cmd->add_option("--max-points", a->options.max_points, "w2: at most this many points per side (seeded subsample)")
      ->capture_default_str();
  cmd->add_option("--k", a->options.k, "prd: the k of the k-nearest-neighbour radii")->capture_default_str();
  cmd->add_option("--bootstrap", a->options.bootstrap,
                  "replicates of the 95% percentile bootstrap intervals (0 = none; none for w2 and prd)")
      ->capture_default_str();
  cmd->add_option("--format", a->format, "stdout: auto (a table on a terminal, JSON otherwise), table or json")
      ->check(CLI::IsMember({"auto", "table", "json"}))
      ->capture_default_str();
  cmd->add_option("--out", a->out, "also write the JSON here (atomically)");
  add_context_options(cmd, a->ctx);
  cmd->callback([a] { run_eval(*a); });
}

struct PlotArgs {
  std::string points, titles, reference, out, title;
  int64_t max_points = 4000;
};

void run_plot(const PlotArgs& a) {
  const auto files = split_list(a.points);
  const auto titles = a.titles.empty() ? files : split_list(a.titles);
  require(titles.size() == files.size(), "--titles", std::to_string(titles.size()) + " titles",
          "one per --points file (" + std::to_string(files.size()) + ")");
  require(a.max_points >= 1, "--max-points", a.max_points, "a positive integer");
  require_output_file(a.out, "--out");
  auto read2 = [&](const std::string& f, const std::string& arg) {
    Points p = read_points_npy(f, arg);
    require(p.d == 2, arg, "'" + f + "' of dimension " + std::to_string(p.d), "2-D points");
    if (p.n > a.max_points) {
      p.data.resize(static_cast<size_t>(a.max_points * 2));
      p.n = a.max_points;
    }
    return p;
  };
  std::vector<Points> sets;
  for (const auto& f : files) sets.push_back(read2(f, "--points"));
  Points ref;
  if (!a.reference.empty()) ref = read2(a.reference, "--reference");
  std::vector<Chart> charts;
  for (size_t k = 0; k < sets.size(); ++k) {
    charts.push_back(samples_chart(titles[k], sets[k].view(), ref.view()));
    charts.back().series.back().color = palette(static_cast<int>(k));
  }
  ChartOptions o;
  o.title = a.title;
  write_charts(a.out, charts, o);
  std::cout << nlohmann::json{{"png", a.out}, {"panels", charts.size()}}.dump() << "\n";
}

void register_plot(CLI::App& root) {
  auto a = std::make_shared<PlotArgs>();
  CLI::App* cmd = root.add_subcommand("plot", "side-by-side scatter PNG of 2-D point sets (.npy)");
  cmd->add_option("--points", a->points, "comma-separated (n, 2) .npy files, one panel each")->required();
  cmd->add_option("--titles", a->titles, "comma-separated panel titles (default: the file names)");
  cmd->add_option("--reference", a->reference, "data drawn in grey behind every panel: (m, 2) .npy");
  cmd->add_option("--title", a->title, "title above the panels");
  cmd->add_option("--max-points", a->max_points, "draw at most this many points per set")->capture_default_str();
  cmd->add_option("--out", a->out, "output PNG")->required();
  cmd->callback([a] { run_plot(*a); });
}

}  // namespace

OTGEN_REGISTER_COMMAND("eval", register_eval);
OTGEN_REGISTER_COMMAND("plot", register_plot);

}  // namespace otgen::cli
