// otgen study's report: the summary over seeds, table.md, metric_vs_nfe.png, cost.png and the sample
// grids (docs/study.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli/chart.h"
#include "cli/command.h"
#include "cli/plot.h"
#include "cli/study.h"
#include "otgen/core/error.h"
#include "otgen/core/npy.h"

namespace otgen::cli::study {

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

namespace {

namespace fs = std::filesystem;

struct Stat {
  double mean = 0, std = 0;
  int64_t n = 0;
};

Stat stat_of(const std::vector<double>& v) {
  Stat s;
  s.n = static_cast<int64_t>(v.size());
  for (double x : v) s.mean += x / static_cast<double>(v.size());
  if (v.size() > 1) {
    for (double x : v) s.std += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(s.std / static_cast<double>(v.size() - 1));
  }
  return s;
}

// table.md, one metric's table: couplings x solvers, "mean ± std" over seeds (nothing if no row has it).
void metric_table(std::ostringstream& table, const Study& study, json& summary, const std::string& metric) {
  const std::vector<Solver>& solvers = study.c.solvers;
  bool any = false;
  for (const auto& [cname, c] : summary.items())
    for (const Solver& s : solvers)
      if (c.contains(s.name) && c[s.name].contains(metric)) any = true;
  if (!any) return;
  table << "## " << metric << "\n\n| coupling |";
  for (const Solver& s : solvers) table << " " << s.name << " |";
  table << "\n| --- |";
  for (size_t i = 0; i < solvers.size(); ++i) table << " --- |";
  table << "\n";
  for (const auto& [cname, copts] : study.c.couplings.items()) {
    table << "| " << cname << " |";
    for (const Solver& s : solvers) {
      const json& c = summary[cname][s.name];
      if (!c.contains(metric)) {
        table << " n/a |";
        continue;
      }
      table << " " << fmt(c[metric]["mean"].get<double>()) << " ± " << fmt(c[metric]["std"].get<double>());
      if (s.method == "dopri5") table << " (NFE " << fmt(c["nfe"]["mean"].get<double>()) << ")";
      table << " |";
    }
    table << "\n";
  }
  table << "\n";
}


// A standard deviation for an error bar (one seed: none, drawn as 0).
double finite_or_zero(const json& v) {
  const double x = v.is_number() ? v.get<double>() : 0.0;
  return std::isfinite(x) ? x : 0.0;
}


}  // namespace

// Aggregates: per coupling and solver, mean and std over seeds of every numeric metric and the NFE.
json summarise(const Study& study) {
  json summary = json::object();
  for (const auto& [cname, copts] : study.c.couplings.items()) {
    for (const Solver& s : study.c.solvers) {
      std::map<std::string, std::vector<double>> vals;
      for (const auto& r : study.rows) {
        if (r["coupling"] != cname || r["solver"] != s.name) continue;
        vals["nfe"].push_back(r["nfe"].get<double>());
        for (const auto& [k, v] : r["metrics"].items())
          if (v.is_number()) vals[k].push_back(v.get<double>());
      }
      for (const auto& [k, v] : vals) {
        const Stat st = stat_of(v);
        summary[cname][s.name][k] = {{"mean", st.mean}, {"std", st.std}, {"seeds", st.n}};
      }
    }
    for (const auto& [k, v] : study.train_stats.at(cname)) {
      const Stat st = stat_of(v);
      summary[cname]["training"][k] = {{"mean", st.mean}, {"std", st.std}, {"seeds", st.n}};
    }
  }
  return summary;
}


// table.md: one table per metric, then the training table (pair cost, seconds).
std::string table_md(const Study& study, json& summary) {
  const StudyConfig& c = study.c;
  std::ostringstream table;
  table << "# " << c.cfg.value("name", std::string("study")) << "\n\n" << "Data: `" << c.data << "`; seeds";
  for (const int64_t s : c.seeds) table << " " << s;
  table << "; " << c.samples << " samples per model against `" << study.reference << "`. Mean ± std over seeds.\n\n";
  for (const std::string& metric : c.metric_names) metric_table(table, study, summary, metric);
  table << "## training\n\n| coupling | pair cost (mean of half squared distances) | training seconds |\n| --- | --- | --- |\n";
  for (const auto& [cname, copts] : c.couplings.items()) {
    const json& t = summary[cname]["training"];
    table << "| " << cname << " | " << fmt(t["pair_cost"]["mean"].get<double>()) << " ± " << fmt(t["pair_cost"]["std"].get<double>())
          << " | " << fmt(t["train_seconds"]["mean"].get<double>()) << " ± " << fmt(t["train_seconds"]["std"].get<double>())
          << " |\n";
  }
  return table.str();
}


// metric_vs_nfe.png: one chart per metric, the mean against NFE on log-log axes, +- std error bars.
void write_metric_charts(const Study& study, json& summary, json& outputs) {
  const StudyConfig& c = study.c;
  std::vector<Chart> charts;
  for (const std::string& metric : c.metric_names) {
    Chart chart;
    chart.title = metric + " vs NFE (mean +- std over seeds)";
    chart.xlabel = "NFE (network evaluations per sample)";
    chart.ylabel = metric;
    chart.logx = chart.logy = true;
    int ci = 0;
    for (const auto& [cname, copts] : c.couplings.items()) {
      ChartSeries ser{cname, {}, {}, {}, {}, palette(ci)};
      // couplings side by side around the NFE (x 2^shift), so their error bars do not overlap
      const double shift = 0.05 * (ci - 0.5 * (static_cast<double>(c.couplings.size()) - 1));
      for (const Solver& sv : c.solvers) {
        const json& cs = summary[cname][sv.name];
        if (!cs.contains(metric) || !cs.contains("nfe")) continue;
        const double m = cs[metric]["mean"], sd = finite_or_zero(cs[metric]["std"]);
        if (!(m > 0) || !std::isfinite(m)) continue;
        ser.x.push_back(std::max(1.0, cs["nfe"]["mean"].get<double>()) * std::exp2(shift));
        ser.y.push_back(m);
        ser.lo.push_back(std::max(m - sd, m * 1e-3));
        ser.hi.push_back(m + sd);
      }
      if (!ser.y.empty()) chart.series.push_back(std::move(ser));
      ++ci;
    }
    if (!chart.series.empty()) charts.push_back(std::move(chart));
  }
  if (charts.empty()) return;
  ChartOptions co;
  co.title = c.cfg.value("name", std::string("study")) + ": " + c.data;
  write_charts(study.a.out + "/metric_vs_nfe.png", charts, co);
  outputs["metric_vs_nfe"] = study.a.out + "/metric_vs_nfe.png";
}

// cost.png: pair cost and training time per coupling (bars, +- std over seeds).
void write_cost_charts(const Study& study, json& summary, json& outputs) {
  Chart pc{"pair cost |x1 - x0|^2 / 2", "coupling", "mean over seeds", ChartKind::Bars, false, false, {}};
  Chart pt{"training time", "coupling", "seconds", ChartKind::Bars, false, false, {}};
  int ci = 0;
  for (const auto& [cname, copts] : study.c.couplings.items()) {
    const json& t = summary[cname]["training"];
    for (auto [chart, key] : {std::pair{&pc, "pair_cost"}, std::pair{&pt, "train_seconds"}}) {
      const double m = t[key]["mean"].get<double>(), sd = finite_or_zero(t[key]["std"]);
      chart->series.push_back({cname, {}, {m}, {m - sd}, {m + sd}, palette(ci)});
    }
    ++ci;
  }
  write_charts(study.a.out + "/cost.png", {pc, pt});
  outputs["cost"] = study.a.out + "/cost.png";
}

// Samples of the first seed: 2-D scatter panels side by side at the first solver, or image grids
// (one per coupling, one row per solver).
void write_sample_plots(const Study& study, json& outputs) {
  const StudyConfig& c = study.c;
  const std::string& out = study.a.out;
  const Points ref_pts = read_points_npy(study.reference, "reference");
  const std::string first = solver_tag(c.solvers.front());
  if (ref_pts.d == 2) {
    std::vector<Chart> sp;
    for (const auto& [cname, copts] : c.couplings.items()) {
      const Points x = read_points_npy(out + "/samples/" + cname + "-s" + std::to_string(c.seeds[0]) + "-" + first + ".npy", "samples");
      sp.push_back(samples_chart(cname + ", " + c.solvers.front().name, x.view(), ref_pts.view()));
      sp.back().series.front().label = "reference";
    }
    write_charts(out + "/samples.png", sp);
    outputs["samples"] = out + "/samples.png";
    return;
  }
  const int64_t side = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(ref_pts.d))));
  if (side * side != ref_pts.d) return;
  for (const auto& [cname, copts] : c.couplings.items()) {
    const int64_t cols = std::min<int64_t>(10, c.samples);
    Points grid(static_cast<int64_t>(c.solvers.size()) * cols, ref_pts.d);
    GridOptions g;
    g.cols = cols;
    g.title = cname + " (rows: solvers)";
    for (size_t i = 0; i < c.solvers.size(); ++i) {
      const Solver& s = c.solvers[i];
      const Points x = read_points_npy(out + "/samples/" + cname + "-s" + std::to_string(c.seeds[0]) + "-" + solver_tag(s) + ".npy",
                                       "samples");
      std::copy_n(x.data.data(), cols * ref_pts.d, grid.row(static_cast<int64_t>(i) * cols));
      g.row_labels.push_back(s.name);
    }
    write_image_grid(out + "/samples_" + cname + ".png", grid.view(), side, 1, g);
    outputs["samples_" + cname] = out + "/samples_" + cname + ".png";
  }
}

}  // namespace otgen::cli::study
