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

// The tag of a solver in file names: euler4, dopri5.
std::string solver_tag(const Solver& s) { return s.steps ? s.method + std::to_string(s.steps) : s.method; }

// The study JSON file, read: an object with known keys only.
json read_config(const std::string& path) {
  json cfg;
  {
    std::ifstream in(path);
    if (!in) fail_argument("--config", "'" + path + "'", "a readable study JSON file");
    try {
      in >> cfg;
    } catch (const std::exception& e) {
      fail_argument("--config", "'" + path + "'", std::string("valid JSON (") + e.what() + ")");
    }
  }
  if (!cfg.is_object()) fail_argument("--config", "'" + path + "'", "a JSON object");
  static const std::vector<std::string> known = {"name", "data", "n", "labels", "train", "couplings", "seeds", "solvers",
                                                 "samples", "sample", "metrics", "eval", "reference", "primary", "features"};
  for (const auto& [key, v] : cfg.items())
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail_argument("--config", "key '" + key + "'", "one of name, data, n, labels, train, couplings, seeds, solvers, "
                                                     "samples, sample, metrics, eval, reference, primary, features");
  return cfg;
}

// The study's configuration, with its defaults (docs/study.md), checked.
struct StudyConfig {
  json cfg;                 // the file as read (study.json keeps it)
  std::string data;         // dataset name or .npy path
  int64_t n = 0;            // data points (0 = the dataset's default)
  json couplings;           // name -> train options
  std::vector<int64_t> seeds;
  std::vector<Solver> solvers;
  int64_t samples = 0;      // samples per model
  std::string metrics;      // --metrics of otgen eval
  std::vector<std::string> metric_names;  // the eval keys they report
  std::string primary;      // the metric of the progress lines
};

StudyConfig parse_config(const std::string& path) {
  StudyConfig c;
  c.cfg = read_config(path);
  const json& cfg = c.cfg;
  if (!cfg.contains("data") || !cfg["data"].is_string()) fail_argument("--config", "data", "a dataset name or .npy path");
  c.data = cfg["data"];
  c.n = cfg.value("n", int64_t{0});
  c.couplings = cfg.value("couplings", json{{"I-FM", {{"coupling", "independent"}}},
                                            {"OT-FM", {{"coupling", "exact"}}},
                                            {"SD-FM", {{"coupling", "semidiscrete"}}}});
  if (!c.couplings.is_object() || c.couplings.empty())
    fail_argument("--config", "couplings", "an object: name -> train options (with \"coupling\")");
  for (const auto& s : cfg.value("seeds", json::array({1, 2, 3}))) {
    if (!s.is_number_integer() || s.get<int64_t>() < 0) fail_argument("--config", "seeds: " + s.dump(), "non-negative integers");
    c.seeds.push_back(s.get<int64_t>());
  }
  if (c.seeds.empty()) fail_argument("--config", "seeds: []", "at least one seed");
  for (const auto& s : cfg.value("solvers", json::array({"euler:1", "euler:2", "euler:4", "euler:8", "euler:16", "dopri5"}))) {
    if (!s.is_string()) fail_argument("--config", "solvers: " + s.dump(), "strings such as euler:4 or dopri5");
    c.solvers.push_back(parse_solver(s.get<std::string>()));
  }
  if (c.solvers.empty()) fail_argument("--config", "solvers: []", "at least one solver");
  c.samples = cfg.value("samples", int64_t{2000});
  if (c.samples < 2) fail_argument("--config", "samples: " + std::to_string(c.samples), "at least 2");
  c.metrics = cfg.value("metrics", std::string("energy,sw2"));
  c.metric_names = report_keys(split_list(c.metrics));
  c.primary = cfg.value("primary", c.metric_names.front());
  return c;
}

// A study under way: its configuration, the commands it ran and the numbers they gave.
struct Study {
  const StudyArgs& a;
  const StudyConfig& c;
  std::vector<std::string> commands;    // every otgen command, in order (study.json)
  std::vector<std::string> data_args;   // --data, --n, --labels of otgen train and features train
  std::string reference;                // the reference set of otgen eval
  std::vector<std::string> eval_extra;  // --features of otgen eval
  json rows = json::array();            // one per (coupling, seed, solver)
  std::map<std::string, std::map<std::string, std::vector<double>>> train_stats;  // coupling -> stat -> per seed

  Study(const StudyArgs& args, const StudyConfig& config) : a(args), c(config) {}
  void log(const std::string& s) const {
    if (!a.quiet) std::cerr << "study: " << s << std::endl;
  }
  // `otgen args...`, listed in commands.
  json self(const std::vector<std::string>& args, const std::string& what) {
    std::string cmd = "otgen";
    for (const auto& s : args) cmd += " " + s;
    commands.push_back(cmd);
    return run_self(args, what);
  }
};

// The reference set: a path, or fresh draws of a generated dataset (its own data seed).
std::string prepare_reference(Study& study) {
  const StudyConfig& c = study.c;
  const json ref = c.cfg.value("reference", json{{"n", 0}});
  if (ref.is_string()) return ref.get<std::string>();
  if (!ref.is_object()) fail_argument("--config", "reference", "a .npy path or {\"n\": N, \"data_seed\": S}");
  if (fs::path(c.data).extension() == ".npy") fail_argument("--config", "reference", "a held-out .npy path for .npy data");
  const std::string reference = study.a.out + "/reference.npy";
  const int64_t rn = ref.value("n", int64_t{0}) > 0 ? ref.value("n", int64_t{0}) : c.samples;
  study.self({"data", "export", "--dataset", ref.value("data", c.data), "--n", std::to_string(rn), "--seed",
              std::to_string(ref.value("data_seed", int64_t{987654321})), "--out", reference},
             "writing the reference set");
  return reference;
}

// fd-features: a feature net given as a path, or trained here once (cached by otgen features train);
// returns the --features option of otgen eval (none without "features").
std::vector<std::string> prepare_features(Study& study) {
  const json& cfg = study.c.cfg;
  if (!cfg.contains("features")) return {};
  const json& f = cfg["features"];
  std::string path;
  if (f.is_string()) {
    path = f.get<std::string>();
  } else if (f.is_object()) {
    path = study.a.out + "/features.pt";
    std::vector<std::string> fargs = {"features", "train"};
    fargs.insert(fargs.end(), study.data_args.begin(), study.data_args.end());
    for (const auto& o : options_of(f, "features")) fargs.push_back(o);
    fargs.insert(fargs.end(), {"--out", path, "-q"});
    study.self(fargs, "training the feature net");
  } else {
    fail_argument("--config", "features", "a feature net .pt path or an object of otgen features train options");
  }
  return {"--features", path};
}

// True when RUN holds a finished model trained with exactly these arguments (its study_key.json).
bool trained_before(const std::string& run, const json& key) {
  if (!fs::exists(run + "/model.pt") || !fs::exists(run + "/study_key.json")) return false;
  std::ifstream k(run + "/study_key.json");
  json old;
  try {
    k >> old;
    return old == key;
  } catch (const std::exception&) {
  }
  return false;
}

// The run's training time and mean pair cost (over its loss history), from its record.json.
void record_training(Study& study, const std::string& cname, const std::string& run) {
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
  study.train_stats[cname]["train_seconds"].push_back(tr.value("seconds", 0.0));
  study.train_stats[cname]["pair_cost"].push_back(pn ? pc / static_cast<double>(pn) : 0.0);
}

// Trains coupling CNAME with SEED into runs/CNAME-sSEED (or reuses it, trained before with the same
// arguments); returns the run folder.
std::string train_cell(Study& study, const std::string& cname, const json& copts, int64_t seed) {
  const std::string run = study.a.out + "/runs/" + cname + "-s" + std::to_string(seed);
  std::vector<std::string> targs = {"train"};
  targs.insert(targs.end(), study.data_args.begin(), study.data_args.end());
  for (const auto& s : options_of(study.c.cfg.value("train", json::object()), "train")) targs.push_back(s);
  for (const auto& s : options_of(copts, "couplings." + cname)) targs.push_back(s);
  targs.insert(targs.end(), {"--seed", std::to_string(seed), "--out", run, "-q"});
  const json key = targs;
  if (trained_before(run, key)) {
    study.log(cname + " seed " + std::to_string(seed) + ": trained before, reused");
    std::string c;
    for (const auto& s : targs) c += s + " ";
    study.commands.push_back("# reused: otgen " + c);
  } else {
    study.log(cname + " seed " + std::to_string(seed) + ": training");
    if (fs::exists(run)) fs::remove_all(run);
    study.self(targs, "training " + cname + " seed " + std::to_string(seed));
    write_json(run + "/study_key.json", key);
  }
  record_training(study, cname, run);
  return run;
}

// Samples the model of RUN with solver S (otgen sample) and scores the samples (otgen eval): one row.
void sample_and_evaluate(Study& study, const std::string& cname, int64_t seed, const std::string& run, const Solver& s) {
  const StudyConfig& c = study.c;
  const std::string tag = cname + "-s" + std::to_string(seed) + "-" + solver_tag(s);
  const std::string xs = study.a.out + "/samples/" + tag + ".npy", ev = study.a.out + "/eval/" + tag + ".json";
  std::vector<std::string> sargs = {"sample", "--model", run + "/model.pt", "--n", std::to_string(c.samples), "--solver",
                                    s.method, "--seed", std::to_string(1000003 + seed), "--out", xs};
  if (s.steps) sargs.push_back("--steps"), sargs.push_back(std::to_string(s.steps));
  for (const auto& o : options_of(c.cfg.value("sample", json::object()), "sample")) sargs.push_back(o);
  const json ss = study.self(sargs, "sampling " + tag);
  std::vector<std::string> eargs = {"eval", "--samples", xs, "--reference", study.reference, "--metrics", c.metrics,
                                    "--out", ev};
  for (const auto& o : options_of(c.cfg.value("eval", json::object()), "eval")) eargs.push_back(o);
  eargs.insert(eargs.end(), study.eval_extra.begin(), study.eval_extra.end());
  study.self(eargs, "evaluating " + tag);
  json m;
  {
    std::ifstream e(ev);
    e >> m;
  }
  json row = {{"coupling", cname}, {"seed", seed}, {"solver", s.name}, {"nfe", ss.value("nfe", int64_t{0})},
              {"metrics", m}};
  study.rows.push_back(row);
  const std::string& primary = c.primary;
  study.log(tag + ": NFE " + std::to_string(row["nfe"].get<int64_t>()) +
            (m.contains(primary) && m[primary].is_number() ? ", " + primary + " " + fmt(m[primary].get<double>()) : ""));
}

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

// A standard deviation for an error bar (one seed: none, drawn as 0).
double finite_or_zero(const json& v) {
  const double x = v.is_number() ? v.get<double>() : 0.0;
  return std::isfinite(x) ? x : 0.0;
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

void run_study(const StudyArgs& a) {
  publish_as_written();  // study.json and each finished cell must appear as they are made (resumable)
  const StudyConfig c = parse_config(a.config);
  fs::create_directories(a.out + "/runs");
  fs::create_directories(a.out + "/samples");
  fs::create_directories(a.out + "/eval");
  Study study{a, c};
  study.data_args = {"--data", c.data};
  if (c.n > 0) study.data_args.push_back("--n"), study.data_args.push_back(std::to_string(c.n));
  if (c.cfg.contains("labels")) study.data_args.push_back("--labels"), study.data_args.push_back(c.cfg["labels"].get<std::string>());
  study.reference = prepare_reference(study);
  study.eval_extra = prepare_features(study);

  const auto t_start = std::chrono::steady_clock::now();
  for (const auto& [cname, copts] : c.couplings.items()) {
    if (!copts.is_object() || !copts.contains("coupling"))
      fail_argument("--config", "couplings." + cname, "an object of train options with \"coupling\"");
    for (const int64_t seed : c.seeds) {
      const std::string run = train_cell(study, cname, copts, seed);
      for (const Solver& s : c.solvers) sample_and_evaluate(study, cname, seed, run, s);
    }
  }
  json summary = summarise(study);
  const std::string table = table_md(study, summary);
  json outputs = {{"study", a.out + "/study.json"}, {"table", a.out + "/table.md"}};
  write_metric_charts(study, summary, outputs);
  write_cost_charts(study, summary, outputs);
  write_sample_plots(study, outputs);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  json doc = run_record("study", Context{});
  doc["config"] = c.cfg;
  doc["config_path"] = a.config;
  doc["rows"] = study.rows;
  doc["summary"] = summary;
  doc["commands"] = study.commands;
  doc["seconds"] = secs;
  write_json(a.out + "/study.json", doc);
  write_file_atomic(a.out + "/table.md", table);
  if (!a.quiet) std::cerr << table;
  std::cout << json{{"seconds", secs}, {"runs", c.couplings.size() * c.seeds.size()}, {"rows", study.rows.size()},
                    {"outputs", outputs}}.dump()
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
