// otgen eval: sample-quality metrics of samples against reference data (SPEC.md §3); prints JSON.
// otgen plot: side-by-side 2-D scatter panels of .npy point sets (e.g. samples of several models).
#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/plot.h"
#include "otgen/error.h"
#include "otgen/metrics.h"
#include "otgen/npy.h"
#include "otgen/record.h"
#include "otgen/rng.h"

namespace otgen::cli {
namespace {

// Median pairwise distance of (up to 1000 points of) the pooled samples: the RBF bandwidth heuristic.
double median_distance(PointsView x, PointsView y) {
  std::vector<const float*> rows;
  for (int64_t i = 0; i < std::min<int64_t>(x.n, 500); ++i) rows.push_back(x.row(i));
  for (int64_t i = 0; i < std::min<int64_t>(y.n, 500); ++i) rows.push_back(y.row(i));
  std::vector<double> dist;
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = i + 1; j < rows.size(); ++j) {
      double s = 0;
      for (int64_t c = 0; c < x.d; ++c) s += std::pow(static_cast<double>(rows[i][c]) - rows[j][c], 2);
      dist.push_back(std::sqrt(s));
    }
  if (dist.empty()) return 1.0;
  std::nth_element(dist.begin(), dist.begin() + dist.size() / 2, dist.end());
  return std::max(dist[dist.size() / 2], 1e-12);
}

struct EvalArgs {
  std::string samples, reference, metrics = "energy,mmd,sw2", out;
  int64_t projections = 256;
  int64_t max_points = 2048;  // w2: subsample size cap
  int64_t k = 3;              // prd: k of the k-NN radii
  Context ctx;
};

void run_eval(const EvalArgs& a) {
  a.ctx.validate();
  const std::vector<std::string> names = split_list(a.metrics);
  for (const auto& m : names)
    if (m != "energy" && m != "mmd" && m != "sw2" && m != "w1" && m != "fd" && m != "w2" && m != "prd")
      fail_argument("--metrics", "'" + m + "'", "a comma-separated list of energy, mmd, sw2, w1, fd, w2, prd");
  require(a.projections >= 1, "--projections", a.projections, "a positive integer");
  require(a.max_points >= 1, "--max-points", a.max_points, "a positive integer");
  require(a.k >= 1, "--k", a.k, "a positive integer");
  const Points x = read_points_npy(a.samples, "--samples");
  const Points y = read_points_npy(a.reference, "--reference");
  require(x.d == y.d, "--reference", "dimension " + std::to_string(y.d), "the samples' dimension " + std::to_string(x.d));
  require(x.n >= 2, "--samples", std::to_string(x.n) + " points", "at least 2");
  require(y.n >= 2, "--reference", std::to_string(y.n) + " points", "at least 2");
  nlohmann::json j{{"samples", a.samples}, {"reference", a.reference}, {"n", x.n}, {"m", y.n}, {"d", x.d}};
  for (const auto& m : names) {
    if (m == "energy") j["energy"] = energy_distance(x, y, a.ctx);
    if (m == "sw2") j["sw2"] = sliced_w2(x, y, a.projections, a.ctx.seed);
    if (m == "w1") j["mean_marginal_w1"] = mean_marginal_w1(x, y);
    if (m == "fd") j["frechet"] = frechet_distance(x, y);
    if (m == "w2") {
      const ExactW2 w = exact_w2(x, y, a.max_points, a.ctx.seed, a.ctx);
      j["w2"] = w.w2;
      j["w2_points"] = w.points;
    }
    if (m == "prd") {
      // Real = the reference, fake = the samples; each needs more than k points.
      require(y.n > a.k, "--k", a.k, "less than the reference's " + std::to_string(y.n) + " points");
      require(x.n > a.k, "--k", a.k, "less than the samples' " + std::to_string(x.n) + " points");
      const PrecisionRecall pr = precision_recall(y, x, a.k, a.ctx);
      j["precision"] = pr.precision;
      j["recall"] = pr.recall;
      j["prd_k"] = a.k;
    }
    if (m == "mmd") {
      // Unbiased MMD^2 with a sum of RBF kernels at 0.5, 1 and 2 times the median distance h.
      const double h = median_distance(x, y);
      std::vector<double> alphas;
      for (double f : {0.5, 1.0, 2.0}) alphas.push_back(1.0 / (2.0 * f * f * h * h));
      j["mmd2"] = mmd2(x, y, alphas, false, a.ctx);
      j["mmd_median_distance"] = h;
    }
  }
  if (!a.out.empty()) write_json(a.out, j);
  std::cout << j.dump() << "\n";
}

void register_eval(CLI::App& root) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = root.add_subcommand("eval", "sample-quality metrics of samples against reference data (JSON)");
  cmd->add_option("--samples", a->samples, "samples: (n, d) .npy")->required();
  cmd->add_option("--reference", a->reference, "reference data, ideally held out: (m, d) .npy")->required();
  cmd->add_option("--metrics", a->metrics,
                  "energy (energy distance), mmd (unbiased RBF MMD^2, median-heuristic bandwidths), sw2 (sliced W2), "
                  "w1 (mean marginal W1), fd (Frechet distance of fitted Gaussians), w2 (exact W2 on equal-size random "
                  "subsamples), prd (k-NN precision and recall, Kynkaanniemi et al. 2019)")
      ->capture_default_str();
  cmd->add_option("--projections", a->projections, "sw2: random directions")->capture_default_str();
  cmd->add_option("--max-points", a->max_points, "w2: at most this many points per side (seeded subsample)")
      ->capture_default_str();
  cmd->add_option("--k", a->k, "prd: the k of the k-nearest-neighbour radii")->capture_default_str();
  cmd->add_option("--out", a->out, "also write the JSON here");
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
  std::vector<Panel> panels;
  for (size_t k = 0; k < sets.size(); ++k) {
    Panel p;
    p.title = titles[k];
    if (ref.n > 0) p.series.push_back({ref.view(), {170, 170, 170}, "data", 1.2f, 0.5f});
    p.series.push_back({sets[k].view(), palette(static_cast<int>(k)), "samples", 1.5f, 0.6f});
    panels.push_back(std::move(p));
  }
  PanelOptions o;
  o.title = a.title;
  write_panels(a.out, panels, o);
  std::cout << nlohmann::json{{"png", a.out}, {"panels", panels.size()}}.dump() << "\n";
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
