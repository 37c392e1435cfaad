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

#include "cli/study.h"

namespace otgen::cli::study {

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


namespace {

namespace fs = std::filesystem;

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
}  // namespace otgen::cli::study
