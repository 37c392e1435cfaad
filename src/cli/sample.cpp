// otgen sample: integrate a trained flow model (ODE solvers, or the weighted SDE twin with --sde).
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/chart.h"
#include "cli/plot.h"
#include "otgen/coupling/coupling.h"
#include "otgen/data/data.h"
#include "otgen/core/error.h"
#include "otgen/flow/flow.h"
#include "otgen/core/npy.h"
#include "otgen/ot/potential_meta.h"
#include "otgen/core/progress.h"
#include "otgen/core/record.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/core/streams.h"

namespace otgen::cli {
namespace {

namespace fs = std::filesystem;
using namespace otgen::flow;
struct SampleArgs {
  std::string model, solver = "euler", out, png, noise, reference, class_, labels_out;
  double guidance = 1.0;
  int64_t n = 1000;
  int64_t trajectories = 0;
  OdeOptions ode;
  Context ctx;
  // --sde: the weighted SDE twin (otgen/wfr/flow_sde.h)
  bool sde = false, no_weights = false, no_final_resample = false;
  std::string tilt, schedule = "sqrt", resample = "systematic", logw_out, record;
  FlowSdeOptions fk;
  const CLI::App* cmd = nullptr;
};

// sample --sde: Euler-Maruyama on the model's SDE twin with Feynman-Kac weights for a tilted,
// tempered or guidance-product target; writes the particles (resampled once at t = 1 unless
// --no-final-resample), their log-weights, and a record with the ESS / log Z trace.
void run_sample_sde(SampleArgs& a, const FlowModel& model, int64_t label, const Points& ref) {
  const int64_t d = model.dim();
  FlowSdeOptions& o = a.fk;
  if (a.cmd->count("--steps") == 0) o.steps = 100;
  else o.steps = a.ode.steps;
  o.schedule = parse_noise_schedule(a.schedule, "--noise-schedule");
  o.resample = wfr::parse_resample_scheme(a.resample, "--resample");
  o.guidance = a.guidance;
  o.weighted = !a.no_weights;
  o.final_resample = !a.no_final_resample;
  o.trace_every = std::max<int64_t>(1, o.steps / 200);
  o.validate();
  const LogRewardFn reward = a.tilt.empty() ? LogRewardFn{} : parse_log_reward(a.tilt, d, "--tilt");
  require(o.tilt_drift == 0.0 || reward, "--tilt-drift", o.tilt_drift, "0 without --tilt");
  require(a.n <= (int64_t{1} << 26) / d, "--n", a.n, "at most 2^26 / dim particles with --sde");
  const auto t0 = std::chrono::steady_clock::now();
  const FlowSdeResult r = sample_flow_sde(model.field(label, a.ctx), a.n, d, reward, o, a.ctx.seed, a.ctx);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (r.termination == Termination::NumericalFailure) throw Error("sample --sde: " + r.message);
  write_npy(a.out, r.particles.x);
  if (!a.logw_out.empty())
    write_npy(a.logw_out, std::span<const double>(r.particles.logw), {r.particles.size()});
  if (!a.labels_out.empty())
    write_npy(a.labels_out, std::vector<int64_t>(static_cast<size_t>(a.n), label >= 0 ? label : model.num_classes()), {a.n});
  nlohmann::json opts{{"steps", o.steps},       {"noise", o.noise},          {"noise_schedule", a.schedule},
                      {"temperature", o.temperature}, {"guidance", o.guidance}, {"tilt", a.tilt},
                      {"tilt_drift", o.tilt_drift}, {"weighted", o.weighted}, {"ess_threshold", o.ess_threshold},
                      {"resample", a.resample},  {"final_resample", o.final_resample}, {"class", a.class_}};
  nlohmann::json summary{{"n", a.n},          {"dim", d},           {"sampler", o.weighted ? "weighted sde" : "sde"},
                         {"nfe", r.nfe},      {"seconds", secs},    {"termination", termination_name(r.termination)},
                         {"resamples", r.resamples}, {"final_ess", r.final_ess}, {"out", a.out}};
  if (o.weighted) summary["log_z"] = r.log_z;
  if (!a.record.empty()) {
    nlohmann::json doc = run_record("sample", a.ctx);
    doc["model"] = a.model;
    doc["options"] = opts;
    doc["summary"] = summary;
    nlohmann::json tr = nlohmann::json::array();
    for (const auto& st : r.trace)
      tr.push_back({{"step", st.step}, {"t", st.t}, {"ess", st.ess}, {"resampled", st.resampled},
                    {"log_z", st.log_z}, {"nfe", st.nfe}});
    doc["trace"] = std::move(tr);
    write_json(a.record, doc);
    summary["record"] = a.record;
  }
  if (!a.png.empty()) {
    require(d == 2, "--png", "a model of dimension " + std::to_string(d), "2-D data with --sde");
    write_charts(a.png, {samples_chart(std::string(o.weighted ? "weighted SDE" : "SDE") + " samples (" +
                                           std::to_string(o.steps) + " steps, NFE " + std::to_string(r.nfe) + ")",
                                       r.particles.x.view(), ref.view())});
    summary["png"] = a.png;
  }
  std::cout << summary.dump() << "\n";
}

// The classes: none (unconditional, or a conditional model's null class), one class for all rows,
// or `all`: --n rows of each class in turn.
struct Classes {
  std::vector<int64_t> labels;  // empty (null class), one class, or, once expanded, one per row
  int64_t per_class = 0;        // --class all: the rows of each class
};

// --class (with all, a.n becomes --n rows of each class).
Classes parse_classes(SampleArgs& a, int64_t K) {
  Classes c;
  if (a.class_.empty()) return c;
  require(K > 0, "--class", "'" + a.class_ + "'", "a conditional model (this one was trained without classes)");
  if (a.class_ == "all") {
    require(a.noise.empty(), "--class", "all", "a single class with --noise");
    require(a.n <= (int64_t{1} << 28) / K, "--n", a.n, "at most 2^28 / classes per class with --class all");
    c.per_class = a.n;
    a.n *= K;
  } else {
    const std::vector<int64_t> k = parse_int_list(a.class_, "--class");
    require(k.size() == 1 && k[0] >= 0 && k[0] < K, "--class", "'" + a.class_ + "'",
            "a class in [0, " + std::to_string(K) + ") or all");
    c.labels.assign(1, k[0]);
  }
  return c;
}

// One label per row (a class given), the rows of each class in turn with --class all.
void expand_labels(Classes& c, int64_t n) {
  if (c.per_class > 0) {
    c.labels.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) c.labels[i] = i / c.per_class;
  } else if (c.labels.size() == 1) {
    c.labels.assign(static_cast<size_t>(n), c.labels[0]);
  }
}

// The start points: noise drawn from --seed, or the rows of --noise (which replace --n).
Points start_points(SampleArgs& a, int64_t d) {
  if (a.noise.empty()) return sdot_noise(a.n, d, a.ctx.seed, a.ctx);
  Points x = read_points_npy(a.noise, "--noise");
  require(x.d == d, "--noise", "dimension " + std::to_string(x.d), "the model's dimension " + std::to_string(d));
  require(x.n >= 1, "--noise", "0 rows", "at least one starting point");
  a.n = x.n;
  return x;
}

// --png of the ODE samples: a 2-D scatter (with --trajectories paths), or an image grid (one row per
// class with --class all).
void write_sample_png(const SampleArgs& a, const FlowModel& model, const Points& x, const Points& ref,
                      const std::vector<float>& traj, int64_t ntraj, const OdeResult& r, int64_t per_class) {
  const int64_t d = model.dim(), K = model.num_classes();
  const int64_t side = model.metadata().value("image_side", int64_t{0});
  if (d == 2) {
    write_charts(a.png, {samples_chart("samples (" + std::string(ode_method_name(a.ode.method)) + ", NFE " +
                                           std::to_string(r.nfe) + ")",
                                       x.view(), ref.view(), traj, ntraj)});
  } else if (side > 0 && d % (side * side) == 0) {
    GridOptions g;
    g.title = std::string(ode_method_name(a.ode.method)) + ", NFE " + std::to_string(r.nfe);
    if (per_class > 0) {  // one row per class, up to 10 samples each
      const int64_t cols = std::min<int64_t>(per_class, 10);
      Points rows(K * cols, d);
      for (int64_t k = 0; k < K; ++k)
        std::copy_n(x.row(k * per_class), cols * d, rows.data.data() + k * cols * d);
      g.cols = cols;
      g.title += ", w = " + to_text(a.guidance) + ", rows = classes";
      write_image_grid(a.png, rows.view(), side, d / (side * side), g);
    } else {
      write_image_grid(a.png, PointsView{x.data.data(), std::min<int64_t>(a.n, 100), d}, side, d / (side * side), g);
    }
  } else {
    fail_argument("--png", "a model of dimension " + std::to_string(d), "2-D data or images");
  }
}

// sample (no --sde): integrate the ODE from x; writes the samples, the labels and the PNG asked for.
void run_sample_ode(SampleArgs& a, const FlowModel& model, const Classes& c, const Points& ref, Points& x) {
  for (const char* opt : {"--sde-noise", "--noise-schedule", "--tilt", "--tilt-drift", "--temperature", "--ess-threshold",
                          "--resample", "--no-weights", "--no-final-resample", "--logw-out", "--record"})
    require(a.cmd->count(opt) == 0, opt, "given", "--sde (an option of the weighted SDE sampler)");
  const int64_t d = model.dim(), K = model.num_classes();
  const FlowModel::Condition cond{c.labels, a.guidance};
  const int64_t ntraj = std::min(a.trajectories, a.n);
  std::vector<float> traj;  // ntraj points at every observed time, 2-D only
  auto observe = [&](double, std::span<const float> s) {
    for (int64_t i = 0; i < ntraj; ++i) traj.insert(traj.end(), s.begin() + i * d, s.begin() + i * d + std::min<int64_t>(d, 2));
  };
  const auto t0 = std::chrono::steady_clock::now();
  const OdeResult r = model.sample(x, a.ode, a.ctx, ntraj > 0 ? OdeObserver(observe) : OdeObserver{}, cond);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (r.termination == Termination::NumericalFailure) throw Error("sample: " + r.message);
  write_npy(a.out, x);
  nlohmann::json summary{{"n", a.n},         {"dim", d},      {"solver", ode_method_name(a.ode.method)},
                         {"nfe", r.nfe},     {"seconds", secs}, {"termination", termination_name(r.termination)},
                         {"out", a.out}};
  if (model.meanflow()) summary["sampler"] = a.ode.method == OdeMethod::Euler ? "meanflow jumps" : "ode on u(x, t, t)";
  if (K > 0) summary["guidance"] = a.guidance, summary["class"] = a.class_.empty() ? "null" : a.class_;
  if (!a.labels_out.empty()) {
    std::vector<int64_t> l = c.labels.empty() ? std::vector<int64_t>(static_cast<size_t>(a.n), K > 0 ? K : 0) : c.labels;
    write_npy(a.labels_out, l, {a.n});
    summary["labels_out"] = a.labels_out;
  }
  if (a.ode.method == OdeMethod::Dopri5) summary["accepted"] = r.accepted, summary["rejected"] = r.rejected;
  if (!a.png.empty()) {
    write_sample_png(a, model, x, ref, traj, ntraj, r, c.per_class);
    summary["png"] = a.png;
  }
  std::cout << summary.dump() << "\n";
}

void run_sample(SampleArgs& a) {
  a.ctx.validate();
  a.ode.method = parse_ode_method(a.solver, "--solver");
  a.ode.validate();
  require(a.n >= 1 && a.n <= (int64_t{1} << 28), "--n", a.n, "an integer in [1, 2^28]");
  require(!a.out.empty(), "--out", "missing", "an output .npy path");
  const FlowModel model = FlowModel::load(a.model, "--model");
  require_output_files({{"--out", &a.out}, {"--png", &a.png}, {"--labels-out", &a.labels_out},
                        {"--logw-out", &a.logw_out}, {"--record", &a.record}},
                       {{"--model", &a.model}, {"--noise", &a.noise}, {"--reference", &a.reference}});
  const int64_t d = model.dim();
  Classes c = parse_classes(a, model.num_classes());
  require(std::isfinite(a.guidance), "--guidance", a.guidance, "a finite number");
  require(a.guidance == 1.0 || !a.class_.empty(), "--guidance", a.guidance, "given with --class (a conditional model)");
  require(a.n <= (int64_t{1} << 27) / d, "--n", a.n,
          "at most 2^27 / dim = " + std::to_string((int64_t{1} << 27) / d) + " samples for dimension " +
              std::to_string(d) + " per call (512 MiB of state)");
  Points ref;  // read before sampling: a bad --reference writes nothing
  if (!a.reference.empty()) {
    require(!a.png.empty(), "--reference", "'" + a.reference + "'", "given together with --png");
    ref = read_points_npy(a.reference, "--reference");
    require(ref.d == 2 && d == 2, "--reference", "dimension " + std::to_string(ref.d), "2-D data for a 2-D model");
  }
  Points x = start_points(a, d);
  expand_labels(c, a.n);
  if (a.sde) {
    require(a.noise.empty(), "--noise", "'" + a.noise + "'", "no start points with --sde (it starts from N(0, I / temperature))");
    require(c.per_class == 0, "--class", "all", "a single class with --sde");
    require(a.cmd->count("--solver") == 0, "--solver", a.solver, "no solver with --sde (it takes Euler-Maruyama steps)");
    require(a.trajectories == 0, "--trajectories", a.trajectories, "0 with --sde");
    run_sample_sde(a, model, c.labels.empty() ? -1 : c.labels[0], ref);
    return;
  }
  run_sample_ode(a, model, c, ref, x);
}

void register_sample(CLI::App& root) {
  auto a = std::make_shared<SampleArgs>();
  CLI::App* cmd = root.add_subcommand("sample", "draw samples from a trained model.pt by integrating its ODE");
  cmd->add_option("--model", a->model, "model.pt written by otgen train")->required();
  cmd->add_option("--n", a->n, "number of samples (noise drawn from --seed)")->capture_default_str();
  cmd->add_option("--noise", a->noise, "start from these points instead: (n, dim) .npy (replaces --n)");
  cmd->add_option("--class", a->class_, "conditional models: a class K, or all (--n per class, in class order)");
  cmd->add_option("--guidance", a->guidance, "conditional models: w of v_null + w (v_class - v_null)")
      ->capture_default_str();
  cmd->add_option("--labels-out", a->labels_out, "also write each sample's class: (n,) int64 .npy");
  cmd->add_option("--solver", a->solver,
                  "euler | midpoint | heun | rk4 | dopri5 (MeanFlow models: euler = mean-flow jumps)")
      ->capture_default_str();
  cmd->add_option("--steps", a->ode.steps, "fixed-step solvers: steps (NFE = steps x stages)")->capture_default_str();
  cmd->add_option("--rtol", a->ode.rtol, "dopri5: relative tolerance")->capture_default_str();
  cmd->add_option("--atol", a->ode.atol, "dopri5: absolute tolerance")->capture_default_str();
  cmd->add_option("--max-nfe", a->ode.max_nfe, "dopri5: cap on evaluations")->capture_default_str();
  cmd->add_option("--out", a->out, "samples: (n, dim) float32 .npy")->required();
  cmd->add_option("--png", a->png, "also draw a PNG: image grid, or a 2-D scatter");
  cmd->add_option("--trajectories", a->trajectories, "2-D --png: draw this many ODE paths")->capture_default_str();
  cmd->add_option("--reference", a->reference, "2-D --png: data drawn in grey behind the samples: (m, 2) .npy");
  cmd->add_flag("--sde", a->sde,
                "sample the model's SDE twin with Feynman-Kac weights (Euler-Maruyama, --steps default 100)");
  cmd->add_option("--sde-noise", a->fk.noise, "--sde: noise scale S (0 = the ODE, weighted)")->capture_default_str();
  cmd->add_option("--noise-schedule", a->schedule, "--sde: sqrt (sigma = S sqrt(1 - t)) | linear (S (1 - t))")
      ->capture_default_str();
  cmd->add_option("--tilt", a->tilt, "--sde: target p_1 exp(r): linear:a1,...,ad | quadratic:k[,m1,...,md]");
  cmd->add_option("--tilt-drift", a->fk.tilt_drift, "--sde: kappa in [0, 1], reward-guided drift kappa sigma^2 t grad r")
      ->capture_default_str();
  cmd->add_option("--temperature", a->fk.temperature, "--sde: target p_1^gamma (gamma > 0)")->capture_default_str();
  cmd->add_option("--ess-threshold", a->fk.ess_threshold, "--sde: resample when ESS < threshold * n")
      ->capture_default_str();
  cmd->add_option("--resample", a->resample, "--sde: multinomial | stratified | systematic | residual")
      ->capture_default_str();
  cmd->add_flag("--no-weights", a->no_weights, "--sde: ignore the weights (the unweighted SDE baseline)");
  cmd->add_flag("--no-final-resample", a->no_final_resample, "--sde: keep the weighted particles at t = 1");
  cmd->add_option("--logw-out", a->logw_out, "--sde: also write the log-weights: (n,) float64 .npy");
  cmd->add_option("--record", a->record, "--sde: run record JSON with the ESS and log Z trace");
  add_context_options(cmd, a->ctx);
  a->cmd = cmd;
  cmd->callback([a] { run_sample(*a); });
}

}  // namespace

OTGEN_REGISTER_COMMAND("sample", register_sample);

}  // namespace otgen::cli
