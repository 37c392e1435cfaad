// otgen study's shared parts (internal to the CLI): the arguments, the configuration, the study under
// way, and the report (study_report.cpp: the summary, table.md and the PNGs).
#pragma once

#include <cstdint>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace otgen::cli::study {

using json = nlohmann::json;

struct StudyArgs {
  std::string config, out;
  bool quiet = false;
};

// Runs `otgen args...` (this executable) and returns its last stdout line as JSON. Its stderr passes
// through (progress, errors). A failure throws naming what the study was doing.
json run_self(const std::vector<std::string>& args, const std::string& what);

struct Solver {
  std::string name, method;
  int64_t steps = 0;
};

// The tag of a solver in file names: euler4, dopri5.
inline std::string solver_tag(const Solver& s) { return s.steps ? s.method + std::to_string(s.steps) : s.method; }

// The number format of table.md (and of the test that re-derives the table from study.json).
std::string fmt(double v);

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

// The report (study_report.cpp). summarise: per coupling and solver, mean and std over seeds of every
// numeric metric, the NFE and the training statistics; table_md: table.md (adds the table to summary);
// the charts and sample grids add their paths to outputs.
json summarise(const Study& study);
std::string table_md(const Study& study, json& summary);
void write_metric_charts(const Study& study, json& summary, json& outputs);
void write_cost_charts(const Study& study, json& summary, json& outputs);
void write_sample_plots(const Study& study, json& outputs);

}  // namespace otgen::cli::study
