// otgen study: the I-FM vs OT-FM vs SD-FM comparison as one command (docs/study.md). A JSON config
// names the data, the couplings, the seeds, the solvers and the metrics; the study trains every
// (coupling, seed) with `otgen train`, samples every solver with `otgen sample` and scores the samples
// with `otgen eval` — the same executable, run as child processes, so each step is exactly the
// command a user would type (they are listed in study.json) — then writes study.json (every number),
// table.md (mean ± std over seeds), metric_vs_nfe.png, samples PNGs and cost.png. Finished runs are
// kept and reused when the study is run again with the same options.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/chart.h"
#include "cli/plot.h"
#include "otgen/core/error.h"
#include "otgen/core/npy.h"
#include "otgen/core/record.h"
#include "otgen/core/staging.h"

namespace otgen::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct StudyArgs {
  std::string config, out;
  bool quiet = false;
};

// Runs `otgen args...` (this executable) and returns its last stdout line as JSON. Its stderr passes
// through (progress, errors). A failure throws naming what the study was doing.
json run_self(const std::vector<std::string>& args, const std::string& what) {
  int fd[2];
  if (pipe(fd) != 0) throw Error("study: cannot create a pipe");
  const pid_t pid = fork();
  if (pid < 0) throw Error("study: cannot start a child process");
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    std::vector<char*> argv;
    static std::string self = "/proc/self/exe";
    argv.push_back(self.data());
    for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(fd[1]);
  std::string out;
  char buf[4096];
  ssize_t k;
  while ((k = read(fd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(k));
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  std::string cmd = "otgen";
  for (const auto& s : args) cmd += " " + s;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("study: " + what + " failed (exit code " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                "): " + cmd);
  const size_t end = out.find_last_not_of("\n");
  const size_t begin = end == std::string::npos ? std::string::npos : out.rfind('\n', end);
  const std::string last = end == std::string::npos ? "" : out.substr(begin == std::string::npos ? 0 : begin + 1, end - (begin == std::string::npos ? 0 : begin + 1) + 1);
  try {
    return json::parse(last);
  } catch (const std::exception&) {
    return json::object();
  }
}

// {"batch": 256, "conditional": true} -> --batch 256 --conditional
std::vector<std::string> options_of(const json& j, const std::string& field) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (!j.is_object()) fail_argument("--config", field + " = " + j.dump(), "an object of option names and values");
  for (const auto& [key, v] : j.items()) {
    std::string flag = "--" + key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (v.is_boolean()) {
      if (v.get<bool>()) out.push_back(flag);
    } else if (v.is_string()) {
      out.push_back(flag), out.push_back(v.get<std::string>());
    } else if (v.is_number()) {
      out.push_back(flag), out.push_back(v.is_number_integer() ? std::to_string(v.get<int64_t>()) : to_text(v.get<double>()));
    } else {
      fail_argument("--config", field + "." + key + " = " + v.dump(), "a number, a string or true/false");
    }
  }
  return out;
}

struct Solver {
  std::string name, method;
  int64_t steps = 0;
};

Solver parse_solver(const std::string& s) {
  const size_t colon = s.find(':');
  Solver r{s, s.substr(0, colon), 0};
  static const std::vector<std::string> fixed = {"euler", "midpoint", "heun", "rk4"};
  const bool is_fixed = std::find(fixed.begin(), fixed.end(), r.method) != fixed.end();
  if (r.method == "dopri5" && colon == std::string::npos) return r;
  if (!is_fixed || colon == std::string::npos)
    fail_argument("--config", "solvers: '" + s + "'", "euler:K, midpoint:K, heun:K, rk4:K (K steps) or dopri5");
  try {
    size_t used = 0;
    r.steps = std::stoll(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1 || r.steps < 1) throw std::invalid_argument("");
  } catch (const std::exception&) {
    fail_argument("--config", "solvers: '" + s + "'", "a positive step count after the colon");
  }
  return r;
}

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

// The number format of table.md (and of the test that re-derives the table from study.json).
std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

// The keys of otgen eval's JSON that a --metrics name reports (the tables and plots show these).
std::vector<std::string> report_keys(const std::vector<std::string>& metrics) {
  static const std::map<std::string, std::vector<std::string>> keys = {
      {"mmd", {"mmd2"}}, {"w1", {"mean_marginal_w1"}}, {"fd", {"frechet"}}, {"fd-pca", {"frechet_pca"}},
      {"fd-features", {"frechet_features"}}, {"prd", {"precision", "recall"}}};
  std::vector<std::string> out;
  for (const auto& m : metrics) {
    const auto it = keys.find(m);
    for (const auto& k : it == keys.end() ? std::vector<std::string>{m} : it->second) out.push_back(k);
  }
  return out;
}

void run_study(const StudyArgs& a) {
  publish_as_written();  // study.json and each finished cell must appear as they are made (resumable)
  json cfg;
  {
    std::ifstream in(a.config);
    if (!in) fail_argument("--config", "'" + a.config + "'", "a readable study JSON file");
    try {
      in >> cfg;
    } catch (const std::exception& e) {
      fail_argument("--config", "'" + a.config + "'", std::string("valid JSON (") + e.what() + ")");
    }
  }
  if (!cfg.is_object()) fail_argument("--config", "'" + a.config + "'", "a JSON object");
  static const std::vector<std::string> known = {"name", "data", "n", "labels", "train", "couplings", "seeds", "solvers",
                                                 "samples", "sample", "metrics", "eval", "reference", "primary", "features"};
  for (const auto& [key, v] : cfg.items())
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail_argument("--config", "key '" + key + "'", "one of name, data, n, labels, train, couplings, seeds, solvers, "
                                                     "samples, sample, metrics, eval, reference, primary, features");
  if (!cfg.contains("data") || !cfg["data"].is_string()) fail_argument("--config", "data", "a dataset name or .npy path");
  const std::string data = cfg["data"];
  const int64_t n = cfg.value("n", int64_t{0});
  const json couplings = cfg.value("couplings", json{{"I-FM", {{"coupling", "independent"}}},
                                                     {"OT-FM", {{"coupling", "exact"}}},
                                                     {"SD-FM", {{"coupling", "semidiscrete"}}}});
  if (!couplings.is_object() || couplings.empty())
    fail_argument("--config", "couplings", "an object: name -> train options (with \"coupling\")");
  std::vector<int64_t> seeds;
  for (const auto& s : cfg.value("seeds", json::array({1, 2, 3}))) {
    if (!s.is_number_integer() || s.get<int64_t>() < 0) fail_argument("--config", "seeds: " + s.dump(), "non-negative integers");
    seeds.push_back(s.get<int64_t>());
  }
  if (seeds.empty()) fail_argument("--config", "seeds: []", "at least one seed");
  std::vector<Solver> solvers;
  for (const auto& s : cfg.value("solvers", json::array({"euler:1", "euler:2", "euler:4", "euler:8", "euler:16", "dopri5"}))) {
    if (!s.is_string()) fail_argument("--config", "solvers: " + s.dump(), "strings such as euler:4 or dopri5");
    solvers.push_back(parse_solver(s.get<std::string>()));
  }
  if (solvers.empty()) fail_argument("--config", "solvers: []", "at least one solver");
  const int64_t samples = cfg.value("samples", int64_t{2000});
  if (samples < 2) fail_argument("--config", "samples: " + std::to_string(samples), "at least 2");
  const std::string metrics = cfg.value("metrics", std::string("energy,sw2"));
  const std::vector<std::string> metric_names = report_keys(split_list(metrics));
  const std::string primary = cfg.value("primary", metric_names.front());

  fs::create_directories(a.out + "/runs");
  fs::create_directories(a.out + "/samples");
  fs::create_directories(a.out + "/eval");
  auto log = [&](const std::string& s) {
    if (!a.quiet) std::cerr << "study: " << s << std::endl;
  };
  std::vector<std::string> commands;
  auto self = [&](const std::vector<std::string>& args, const std::string& what) {
    std::string c = "otgen";
    for (const auto& s : args) c += " " + s;
    commands.push_back(c);
    return run_self(args, what);
  };
  std::vector<std::string> data_args = {"--data", data};
  if (n > 0) data_args.push_back("--n"), data_args.push_back(std::to_string(n));
  if (cfg.contains("labels")) data_args.push_back("--labels"), data_args.push_back(cfg["labels"].get<std::string>());

  // The reference set: a path, or fresh draws of a generated dataset (its own data seed).
  std::string reference;
  const json ref = cfg.value("reference", json{{"n", 0}});
  if (ref.is_string()) {
    reference = ref.get<std::string>();
  } else if (ref.is_object()) {
    if (fs::path(data).extension() == ".npy")
      fail_argument("--config", "reference", "a held-out .npy path for .npy data");
    reference = a.out + "/reference.npy";
    const int64_t rn = ref.value("n", int64_t{0}) > 0 ? ref.value("n", int64_t{0}) : samples;
    self({"data", "export", "--dataset", ref.value("data", data), "--n", std::to_string(rn), "--seed",
          std::to_string(ref.value("data_seed", int64_t{987654321})), "--out", reference},
         "writing the reference set");
  } else {
    fail_argument("--config", "reference", "a .npy path or {\"n\": N, \"data_seed\": S}");
  }

  // fd-features: a feature net given as a path, or trained here once (cached by otgen features train).
  std::vector<std::string> eval_extra;
  if (cfg.contains("features")) {
    const json& f = cfg["features"];
    std::string path;
    if (f.is_string()) {
      path = f.get<std::string>();
    } else if (f.is_object()) {
      path = a.out + "/features.pt";
      std::vector<std::string> fargs = {"features", "train"};
      fargs.insert(fargs.end(), data_args.begin(), data_args.end());
      for (const auto& o : options_of(f, "features")) fargs.push_back(o);
      fargs.insert(fargs.end(), {"--out", path, "-q"});
      self(fargs, "training the feature net");
    } else {
      fail_argument("--config", "features", "a feature net .pt path or an object of otgen features train options");
    }
    eval_extra = {"--features", path};
  }

  json rows = json::array();
  std::map<std::string, std::map<std::string, std::vector<double>>> train_stats;  // coupling -> stat -> per seed
  const auto t_start = std::chrono::steady_clock::now();
  for (const auto& [cname, copts] : couplings.items()) {
    if (!copts.is_object() || !copts.contains("coupling"))
      fail_argument("--config", "couplings." + cname, "an object of train options with \"coupling\"");
    for (const int64_t seed : seeds) {
      const std::string run = a.out + "/runs/" + cname + "-s" + std::to_string(seed);
      std::vector<std::string> targs = {"train"};
      targs.insert(targs.end(), data_args.begin(), data_args.end());
      for (const auto& s : options_of(cfg.value("train", json::object()), "train")) targs.push_back(s);
      for (const auto& s : options_of(copts, "couplings." + cname)) targs.push_back(s);
      targs.insert(targs.end(), {"--seed", std::to_string(seed), "--out", run, "-q"});
      const json key = targs;
      bool done = false;
      if (fs::exists(run + "/model.pt") && fs::exists(run + "/study_key.json")) {
        std::ifstream k(run + "/study_key.json");
        json old;
        try {
          k >> old;
          done = old == key;
        } catch (const std::exception&) {
        }
      }
      if (done) {
        log(cname + " seed " + std::to_string(seed) + ": trained before, reused");
        commands.push_back("# reused: otgen " + [&] { std::string c; for (const auto& s : targs) c += s + " "; return c; }());
      } else {
        log(cname + " seed " + std::to_string(seed) + ": training");
        if (fs::exists(run)) fs::remove_all(run);
        self(targs, "training " + cname + " seed " + std::to_string(seed));
        write_json(run + "/study_key.json", key);
      }
      json rec;
      {
        std::ifstream r(run + "/record.json");
        r >> rec;
      }
      const json& tr = rec.contains("result") ? rec["result"] : rec;
      double pc = 0;
      int64_t pn = 0;
      if (tr.contains("history"))
        for (const auto& e : tr["history"]) pc += e.value("pair_cost", 0.0), ++pn;
      train_stats[cname]["train_seconds"].push_back(tr.value("seconds", 0.0));
      train_stats[cname]["pair_cost"].push_back(pn ? pc / static_cast<double>(pn) : 0.0);
      for (const Solver& s : solvers) {
        const std::string tag = cname + "-s" + std::to_string(seed) + "-" + (s.steps ? s.method + std::to_string(s.steps) : s.method);
        const std::string xs = a.out + "/samples/" + tag + ".npy", ev = a.out + "/eval/" + tag + ".json";
        std::vector<std::string> sargs = {"sample", "--model", run + "/model.pt", "--n", std::to_string(samples), "--solver",
                                          s.method, "--seed", std::to_string(1000003 + seed), "--out", xs};
        if (s.steps) sargs.push_back("--steps"), sargs.push_back(std::to_string(s.steps));
        for (const auto& o : options_of(cfg.value("sample", json::object()), "sample")) sargs.push_back(o);
        const json ss = self(sargs, "sampling " + tag);
        std::vector<std::string> eargs = {"eval", "--samples", xs, "--reference", reference, "--metrics", metrics, "--out", ev};
        for (const auto& o : options_of(cfg.value("eval", json::object()), "eval")) eargs.push_back(o);
        eargs.insert(eargs.end(), eval_extra.begin(), eval_extra.end());
        self(eargs, "evaluating " + tag);
        json m;
        {
          std::ifstream e(ev);
          e >> m;
        }
        json row = {{"coupling", cname}, {"seed", seed}, {"solver", s.name}, {"nfe", ss.value("nfe", int64_t{0})},
                    {"metrics", m}};
        rows.push_back(row);
        log(tag + ": NFE " + std::to_string(row["nfe"].get<int64_t>()) +
            (m.contains(primary) && m[primary].is_number() ? ", " + primary + " " + fmt(m[primary].get<double>()) : ""));
      }
    }
  }

  // Aggregates: per coupling and solver, mean and std over seeds of every numeric metric and the NFE.
  json summary = json::object();
  for (const auto& [cname, copts] : couplings.items()) {
    for (const Solver& s : solvers) {
      std::map<std::string, std::vector<double>> vals;
      for (const auto& r : rows) {
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
    for (const auto& [k, v] : train_stats[cname]) {
      const Stat st = stat_of(v);
      summary[cname]["training"][k] = {{"mean", st.mean}, {"std", st.std}, {"seeds", st.n}};
    }
  }

  // table.md: one table per metric, couplings x solvers, "mean ± std" over seeds.
  std::ostringstream table;
  table << "# " << cfg.value("name", std::string("study")) << "\n\n" << "Data: `" << data << "`; seeds";
  for (const int64_t s : seeds) table << " " << s;
  table << "; " << samples << " samples per model against `" << reference << "`. Mean ± std over seeds.\n\n";
  for (const std::string& metric : metric_names) {
    bool any = false;
    for (const auto& [cname, c] : summary.items())
      for (const Solver& s : solvers)
        if (c.contains(s.name) && c[s.name].contains(metric)) any = true;
    if (!any) continue;
    table << "## " << metric << "\n\n| coupling |";
    for (const Solver& s : solvers) table << " " << s.name << " |";
    table << "\n| --- |";
    for (size_t i = 0; i < solvers.size(); ++i) table << " --- |";
    table << "\n";
    for (const auto& [cname, copts] : couplings.items()) {
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
  table << "## training\n\n| coupling | pair cost (mean of half squared distances) | training seconds |\n| --- | --- | --- |\n";
  for (const auto& [cname, copts] : couplings.items()) {
    const json& t = summary[cname]["training"];
    table << "| " << cname << " | " << fmt(t["pair_cost"]["mean"].get<double>()) << " ± " << fmt(t["pair_cost"]["std"].get<double>())
          << " | " << fmt(t["train_seconds"]["mean"].get<double>()) << " ± " << fmt(t["train_seconds"]["std"].get<double>())
          << " |\n";
  }

  // A standard deviation for an error bar (one seed: none, drawn as 0).
  auto finite_or_zero = [](const json& v) {
    const double x = v.is_number() ? v.get<double>() : 0.0;
    return std::isfinite(x) ? x : 0.0;
  };
  // metric_vs_nfe.png: one chart per metric, the mean against NFE on log-log axes, +- std error bars.
  std::vector<Chart> charts;
  for (const std::string& metric : metric_names) {
    Chart chart;
    chart.title = metric + " vs NFE (mean +- std over seeds)";
    chart.xlabel = "NFE (network evaluations per sample)";
    chart.ylabel = metric;
    chart.logx = chart.logy = true;
    int ci = 0;
    for (const auto& [cname, copts] : couplings.items()) {
      ChartSeries ser{cname, {}, {}, {}, {}, palette(ci)};
      // couplings side by side around the NFE (x 2^shift), so their error bars do not overlap
      const double shift = 0.05 * (ci - 0.5 * (static_cast<double>(couplings.size()) - 1));
      for (const Solver& sv : solvers) {
        const json& c = summary[cname][sv.name];
        if (!c.contains(metric) || !c.contains("nfe")) continue;
        const double m = c[metric]["mean"], sd = finite_or_zero(c[metric]["std"]);
        if (!(m > 0) || !std::isfinite(m)) continue;
        ser.x.push_back(std::max(1.0, c["nfe"]["mean"].get<double>()) * std::exp2(shift));
        ser.y.push_back(m);
        ser.lo.push_back(std::max(m - sd, m * 1e-3));
        ser.hi.push_back(m + sd);
      }
      if (!ser.y.empty()) chart.series.push_back(std::move(ser));
      ++ci;
    }
    if (!chart.series.empty()) charts.push_back(std::move(chart));
  }
  json outputs = {{"study", a.out + "/study.json"}, {"table", a.out + "/table.md"}};
  if (!charts.empty()) {
    ChartOptions co;
    co.title = cfg.value("name", std::string("study")) + ": " + data;
    write_charts(a.out + "/metric_vs_nfe.png", charts, co);
    outputs["metric_vs_nfe"] = a.out + "/metric_vs_nfe.png";
  }
  // cost.png: pair cost and training time per coupling (bars, +- std over seeds).
  {
    Chart pc{"pair cost |x1 - x0|^2 / 2", "coupling", "mean over seeds", ChartKind::Bars, false, false, {}};
    Chart pt{"training time", "coupling", "seconds", ChartKind::Bars, false, false, {}};
    int ci = 0;
    for (const auto& [cname, copts] : couplings.items()) {
      const json& t = summary[cname]["training"];
      for (auto [chart, key] : {std::pair{&pc, "pair_cost"}, std::pair{&pt, "train_seconds"}}) {
        const double m = t[key]["mean"].get<double>(), sd = finite_or_zero(t[key]["std"]);
        chart->series.push_back({cname, {}, {m}, {m - sd}, {m + sd}, palette(ci)});
      }
      ++ci;
    }
    write_charts(a.out + "/cost.png", {pc, pt});
    outputs["cost"] = a.out + "/cost.png";
  }
  // Samples of the first seed: 2-D scatter panels side by side at the first solver, or image grids
  // (one per coupling, one row per solver).
  {
    const Points ref_pts = read_points_npy(reference, "reference");
    const std::string first = solvers.front().steps ? solvers.front().method + std::to_string(solvers.front().steps)
                                                    : solvers.front().method;
    if (ref_pts.d == 2) {
      std::vector<Chart> sp;
      for (const auto& [cname, copts] : couplings.items()) {
        const Points x = read_points_npy(a.out + "/samples/" + cname + "-s" + std::to_string(seeds[0]) + "-" + first + ".npy", "samples");
        sp.push_back(samples_chart(cname + ", " + solvers.front().name, x.view(), ref_pts.view()));
        sp.back().series.front().label = "reference";
      }
      write_charts(a.out + "/samples.png", sp);
      outputs["samples"] = a.out + "/samples.png";
    } else {
      const int64_t side = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(ref_pts.d))));
      if (side * side == ref_pts.d) {
        for (const auto& [cname, copts] : couplings.items()) {
          const int64_t cols = std::min<int64_t>(10, samples);
          Points grid(static_cast<int64_t>(solvers.size()) * cols, ref_pts.d);
          GridOptions g;
          g.cols = cols;
          g.title = cname + " (rows: solvers)";
          for (size_t i = 0; i < solvers.size(); ++i) {
            const Solver& s = solvers[i];
            const Points x = read_points_npy(a.out + "/samples/" + cname + "-s" + std::to_string(seeds[0]) + "-" +
                                                 (s.steps ? s.method + std::to_string(s.steps) : s.method) + ".npy",
                                             "samples");
            std::copy_n(x.data.data(), cols * ref_pts.d, grid.row(static_cast<int64_t>(i) * cols));
            g.row_labels.push_back(s.name);
          }
          write_image_grid(a.out + "/samples_" + cname + ".png", grid.view(), side, 1, g);
          outputs["samples_" + cname] = a.out + "/samples_" + cname + ".png";
        }
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  json doc = run_record("study", Context{});
  doc["config"] = cfg;
  doc["config_path"] = a.config;
  doc["rows"] = rows;
  doc["summary"] = summary;
  doc["commands"] = commands;
  doc["seconds"] = secs;
  write_json(a.out + "/study.json", doc);
  write_file_atomic(a.out + "/table.md", table.str());
  if (!a.quiet) std::cerr << table.str();
  std::cout << json{{"seconds", secs}, {"runs", couplings.size() * seeds.size()}, {"rows", rows.size()}, {"outputs", outputs}}.dump()
            << "\n";
}

void register_study(CLI::App& root) {
  auto a = std::make_shared<StudyArgs>();
  CLI::App* cmd = root.add_subcommand("study", "I-FM vs OT-FM vs SD-FM: train, sample and evaluate as one command");
  cmd->add_option("--config", a->config, "study JSON (docs/study.md; examples/study/*.json)")->required();
  cmd->add_option("--out", a->out, "study folder: runs/, samples/, eval/, study.json, table.md, PNGs")->required();
  cmd->add_flag("-q,--quiet", a->quiet, "no progress lines on stderr");
  cmd->callback([a] { run_study(*a); });
}

OTGEN_REGISTER_COMMAND("train study", register_study);

}  // namespace
}  // namespace otgen::cli
