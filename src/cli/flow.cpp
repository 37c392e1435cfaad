// otgen train | sample: flow-matching training with any coupling, and ODE sampling of a model.pt.
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
#include "otgen/coupling.h"
#include "otgen/data.h"
#include "otgen/error.h"
#include "otgen/flow.h"
#include "otgen/npy.h"
#include "otgen/potential_meta.h"
#include "otgen/progress.h"
#include "otgen/record.h"
#include "otgen/rng.h"
#include "otgen/semidiscrete.h"
#include "otgen/streams.h"

namespace otgen::cli {
namespace {

namespace fs = std::filesystem;
using namespace otgen::flow;

// What `otgen train` was asked to do, beyond TrainOptions: kept in RUN_DIR/run.json so that
// `--resume RUN_DIR` rebuilds the same data and coupling.
struct TrainArgs {
  std::string data = "8gaussians", coupling = "independent", potential, labels, out, resume, record;
  bool conditional = false;       // class-conditional model on the data's labels (--labels implies it)
  bool allow_foreign_potential = false;  // --allow-foreign-potential (not kept in run.json)
  double class_penalty = std::numeric_limits<double>::infinity();  // semidiscrete, conditional: beta
  int64_t n = 0;                  // data points (0 = the dataset's default)
  uint64_t data_seed = 0;
  double sd_epsilon = 0.0;        // semidiscrete: absolute epsilon of the potential (0 = argmax pairs)
  double sinkhorn_epsilon = 0.05; // sinkhorn: absolute, or times std(C) of the batch with relative_epsilon
  bool relative_epsilon = true;   // resolved by resolve_sinkhorn_epsilon (not given: 0.05 x std(C))
  bool sinkhorn_epsilon_given = false, relative_epsilon_flag = false;  // on the command line
  int64_t fit_steps = 3000;       // semidiscrete without --potential: steps of the potential fit
  std::string model = "mlp", time = "uniform", optimizer = "adam", schedule = "constant", precision = "fp32";
  std::string mults = "1,2,2";
  TrainOptions opt;
  bool steps_given = false;       // --steps on the command line (with --resume: the new total)
  bool time_scale_given = false;  // --time-scale on the command line (else 1 for MeanFlow, 1000 otherwise)
  Context ctx;

  nlohmann::json to_json() const {
    return {{"data", data},         {"n", n},
            {"data_seed", data_seed}, {"coupling", coupling},
            {"potential", potential}, {"sd_epsilon", sd_epsilon},
            {"labels", labels},     {"conditional", conditional},
            {"class_penalty", std::isinf(class_penalty) ? nlohmann::json("inf") : nlohmann::json(class_penalty)},
            {"sinkhorn_epsilon", sinkhorn_epsilon}, {"relative_epsilon", relative_epsilon}, {"fit_steps", fit_steps},
            {"seed", ctx.seed},     {"options", opt.to_json()}};
  }
  void from_json(const nlohmann::json& j) {
    // Integers only as JSON integers: a float such as 1e69 would be an out-of-range conversion.
    auto integer = [&](const char* key) {
      const nlohmann::json& v = j.at(key);
      if (!v.is_number_integer()) throw Error(std::string("--resume: malformed run.json (") + key + " = " + v.dump() + ", expected an integer)");
      return v;
    };
    try {
      data = j.at("data").get<std::string>();
      n = integer("n").get<int64_t>();
      data_seed = integer("data_seed").get<uint64_t>();
      coupling = j.at("coupling").get<std::string>();
      potential = j.at("potential").get<std::string>();
      sd_epsilon = j.at("sd_epsilon").get<double>();
      labels = j.value("labels", std::string());
      conditional = j.value("conditional", false);
      const nlohmann::json cp = j.value("class_penalty", nlohmann::json("inf"));
      class_penalty = cp.is_string() ? std::numeric_limits<double>::infinity() : cp.get<double>();
      sinkhorn_epsilon = j.at("sinkhorn_epsilon").get<double>();
      relative_epsilon = j.value("relative_epsilon", true);  // runs before the key existed: relative
      fit_steps = integer("fit_steps").get<int64_t>();
      ctx.seed = integer("seed").get<uint64_t>();
      opt = TrainOptions::from_json(j.at("options"));
    } catch (const nlohmann::json::exception& e) {
      throw Error("--resume: malformed run.json (" + std::string(e.what()) + ")");
    }
  }
};

// The coupling's view of the data: labelled for conditional training.
CouplingData coupling_data(const TrainArgs& a, const Dataset& ds) {
  if (!a.conditional) return {ds.x.view(), {}, 0};
  return {ds.x.view(), ds.labels, ds.num_classes};
}

std::vector<int64_t> parse_list(const std::string& s, const std::string& argument) {
  std::vector<int64_t> v;
  for (const std::string& item : split_list(s)) {
    try {
      size_t used = 0;
      v.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      fail_argument(argument, "'" + s + "'", "comma-separated integers, e.g. 1,2,2");
    }
  }
  return v;
}

// A writable output folder: created (with its parents) if missing.
void prepare_run_dir(const std::string& dir) {
  require(!dir.empty(), "--out", "''", "a run folder");
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    require(fs::is_directory(dir, ec), "--out", "'" + dir + "'", "a folder (it is a file)");
  } else {
    fs::create_directories(dir, ec);
    if (ec) fail_argument("--out", "'" + dir + "'", "a folder that can be created (" + ec.message() + ")");
  }
  require(::access(dir.c_str(), W_OK) == 0, "--out", "'" + dir + "'", "a writable folder");
}

// One meaning of epsilon everywhere (docs/batch_ot.md#epsilon): a given --sinkhorn-epsilon is absolute
// unless --relative-epsilon; not given, it is 0.05 x std(C) of each batch pair.
void resolve_sinkhorn_epsilon(TrainArgs& a) {
  if (!a.sinkhorn_epsilon_given) a.sinkhorn_epsilon = 0.05;
  a.relative_epsilon = a.relative_epsilon_flag || !a.sinkhorn_epsilon_given;
}

// The coupling's arguments, checked before anything is written.
void check_coupling_args(const TrainArgs& a, const Dataset& ds) {
  require(a.coupling == "semidiscrete" || std::isinf(a.class_penalty), "--class-penalty", a.class_penalty,
          "given with --coupling semidiscrete only (batch OT and independent pairs stay inside each class)");
  require(a.coupling == "sinkhorn" || !a.relative_epsilon_flag, "--relative-epsilon", "given",
          "with --coupling sinkhorn only (--sd-epsilon is absolute: the epsilon of the fit)");
  if (a.coupling == "exact" || a.coupling == "sinkhorn") {
    require(a.opt.batch <= ds.x.n, "--batch", a.opt.batch,
            "at most the number of data points (" + std::to_string(ds.x.n) + ") for batch OT");
    require(std::isfinite(a.sinkhorn_epsilon) && a.sinkhorn_epsilon > 0, "--sinkhorn-epsilon", a.sinkhorn_epsilon,
            "a positive number");
  } else if (a.coupling == "semidiscrete") {
    require(a.sd_epsilon >= 0 && std::isfinite(a.sd_epsilon), "--sd-epsilon", a.sd_epsilon, "a number >= 0");
    require(a.class_penalty > 0, "--class-penalty", a.class_penalty, "a positive number (default inf = per class)");
    require(a.fit_steps >= 1, "--fit-steps", a.fit_steps, "a positive integer");
    if (!a.potential.empty()) {
      const auto gd = read_vector_npy(a.potential, "--potential");
      require(static_cast<int64_t>(gd.size()) == ds.x.n, "--potential", "length " + std::to_string(gd.size()),
              "one value per data point (" + std::to_string(ds.x.n) + ")");
      if (!a.allow_foreign_potential)
        check_potential_meta(a.potential, potential_meta(ds.x, coupling_data(a, ds).labels, {}, a.sd_epsilon,
                                                         SdotCost::SqEuclideanHalf, a.class_penalty),
                             "--potential");
    }
  } else if (a.coupling != "independent") {
    fail_argument("--coupling", "'" + a.coupling + "'", "one of independent | exact | sinkhorn | semidiscrete");
  }
}

// The coupling (arguments checked by check_coupling_args). Semidiscrete without --potential: fits one
// first with sdot fit's defaults and keeps it as RUN_DIR/potential.npy (run.json then names it).
std::unique_ptr<Coupling> make_coupling(TrainArgs& a, const Dataset& ds, const std::string& run_dir) {
  const CouplingData data = coupling_data(a, ds);
  if (a.coupling == "independent") return std::make_unique<IndependentCoupling>(data);
  if (a.coupling == "exact" || a.coupling == "sinkhorn") {
    BatchOTOptions o;
    o.method = a.coupling == "exact" ? BatchOTMethod::Exact : BatchOTMethod::Sinkhorn;
    o.sinkhorn.epsilon = a.sinkhorn_epsilon;
    o.sinkhorn.relative_epsilon = a.relative_epsilon;
    o.validate();
    return std::make_unique<BatchOTCoupling>(data, o);
  }
  if (a.potential.empty()) {
    SemidiscreteOT::Options so;
    so.epsilon = a.sd_epsilon;
    so.steps = a.fit_steps;
    so.chi2_every = std::min<int64_t>(1000, a.fit_steps);
    so.class_penalty = a.class_penalty;
    Context fctx = a.ctx;
    fctx.seed = stream_key(a.ctx.seed, Stream::SdFit);
    const auto r = SemidiscreteOT(so).fit(ds.x, {}, fctx, data.labels);
    if (r.termination == Termination::NumericalFailure) throw Error("semidiscrete fit: " + r.message);
    if (!a.ctx.quiet)
      std::cerr << "potential: " << r.steps << " steps, chi2 " << (r.chi2 ? to_text(*r.chi2) : "n/a") << " ("
                << r.seconds << " s)\n";
    a.potential = run_dir + "/potential.npy";
    write_npy(a.potential, r.g, {static_cast<int64_t>(r.g.size())});
    write_potential_meta(a.potential, potential_meta(ds.x, data.labels, {}, a.sd_epsilon, SdotCost::SqEuclideanHalf,
                                                     a.class_penalty));
  }
  const auto g = read_vector_npy(a.potential, "--potential");
  return std::make_unique<SemidiscreteCoupling>(data, std::vector<float>(g.begin(), g.end()), a.sd_epsilon,
                                                std::vector<double>{}, a.class_penalty);
}

nlohmann::json result_json(const TrainResult& r) {
  nlohmann::json h = nlohmann::json::array();
  for (const auto& e : r.history)
    h.push_back({{"step", e.step}, {"loss", e.loss}, {"pair_cost", e.pair_cost}, {"lr", e.lr}, {"seconds", e.seconds}});
  return {{"steps", r.steps},
          {"resumed_from", r.resumed_from},
          {"parameters", r.parameters},
          {"seconds", r.seconds},
          {"coupling_seconds", r.coupling_seconds},
          {"coupling_fraction", r.seconds > 0 ? r.coupling_seconds / r.seconds : 0.0},
          {"steps_per_second", r.steps_per_second},
          {"precision", to_string(r.precision)},
          {"precision_note", r.precision_note},
          {"termination", termination_name(r.termination)},
          {"message", r.message},
          {"history", h}};
}

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_interrupt(int) { g_interrupted = 1; }

void run_train(TrainArgs& a) {
  if (a.resume.empty()) {
    a.opt.model.kind = parse_model_kind(a.model, "--model");
    a.opt.time = parse_time_sampling(a.time, "--time");
    a.opt.optimizer = parse_optimizer(a.optimizer, "--optimizer");
    a.opt.schedule = parse_schedule(a.schedule, "--schedule");
    a.opt.precision = parse_precision(a.precision, "--precision");
    a.opt.model.mults = parse_list(a.mults, "--mults");
    if (a.opt.model.meanflow && !a.time_scale_given) a.opt.model.time_scale = 1.0;
    resolve_sinkhorn_epsilon(a);
  }
  a.ctx.validate();
  std::string dir;
  if (a.resume.empty()) {
    require(!a.out.empty(), "--out", "missing", "a run folder (or --resume RUN_DIR)");
    dir = a.out;
  } else {
    dir = a.resume;
    std::error_code ec;
    const std::string run = dir + "/run.json";
    require(fs::is_regular_file(run, ec), "--resume", "'" + dir + "'", "a run folder of otgen train (with run.json)");
    nlohmann::json j;
    try {
      std::ifstream f(run);
      j = nlohmann::json::parse(f);
    } catch (const std::exception&) {
      fail_argument("--resume", "'" + run + "'", "a readable run.json");
    }
    const int64_t steps = a.opt.steps;
    a.from_json(j);
    if (a.steps_given) a.opt.steps = steps;  // --steps may extend a resumed run
    checkpoint_options(RunFiles{dir}.checkpoint(), "--resume");  // a missing or corrupt checkpoint fails here
  }
  // Everything that can fail on input fails here, before any training.
  if (!a.labels.empty()) a.conditional = true;
  const Dataset ds = load_data(a.data, a.n, a.data_seed, a.labels);
  a.opt.model.dim = ds.x.d;
  if (a.conditional) {
    require(!ds.labels.empty(), "--conditional", "given", "labelled data (" + ds.name + " has no labels; give --labels)");
    a.opt.model.num_classes = ds.num_classes;
  }
  require(a.conditional || std::isinf(a.class_penalty), "--class-penalty", a.class_penalty, "given with --conditional");
  if (a.opt.model.kind == ModelKind::Unet && a.opt.model.image_side == 0) {
    require(ds.image_side > 0, "--model", "unet", "image data (square images; give --image-side for .npy data)");
    a.opt.model.image_side = ds.image_side;
  }
  a.opt.validate();
  check_coupling_args(a, ds);
  if (a.resume.empty()) prepare_run_dir(dir);
  if (!a.record.empty()) require_output_file(a.record, "--record", {{"--data", &a.data}});
  const std::unique_ptr<Coupling> coupling = make_coupling(a, ds, dir);
  // The run's description (a resume with a new --steps records the new total once it has trained).
  if (a.resume.empty()) write_file_atomic(dir + "/run.json", a.to_json().dump(2) + "\n");

  const int64_t params = FlowModel::init(a.opt.model, 0).parameters();
  if (!a.ctx.quiet)
    std::cerr << "train: " << (a.opt.model.meanflow ? "MeanFlow " : "") << to_string(a.opt.model.kind) << " ("
              << params << " parameters"
              << (a.conditional ? ", " + std::to_string(a.opt.model.num_classes) + " classes" : std::string()) << ") on "
              << ds.name << " (" << ds.x.n << " x " << ds.x.d << "), coupling " << coupling->name() << ", batch "
              << a.opt.batch << ", "
            << a.opt.steps << " steps, " << to_string(a.opt.precision) << ", " << a.ctx.resolved_threads()
            << " threads\n";
  Progress bar("train", a.opt.steps, a.ctx);
  double loss_ema = 0;
  auto t0 = std::chrono::steady_clock::now();
  int64_t first = -1;
  auto observe = [&](int64_t step, double loss) -> bool {
    if (first < 0) first = step - 1;
    loss_ema = (step - first == 1) ? loss : 0.98 * loss_ema + 0.02 * loss;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char status[64];
    std::snprintf(status, sizeof status, "%.0f pairs/s",
                  secs > 0 ? static_cast<double>((step - first) * a.opt.batch) / secs : 0.0);
    bar.set_metric("loss", loss_ema);
    bar.update(step, status);
    return g_interrupted == 0;
  };
  // Ctrl-C / SIGTERM: finish the step, write the checkpoint and model.pt, exit 130.
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  nlohmann::json meta{{"data", ds.name}, {"n", ds.x.n}, {"image_side", ds.image_side},
                      {"classes", a.opt.model.num_classes}, {"meanflow", a.opt.model.meanflow}};
  const TrainResult r = train_flow(a.opt, coupling_data(a, ds), *coupling, RunFiles{dir},
                                   !a.resume.empty(), meta, a.ctx, observe);
  bar.finish();
  if (!r.precision_note.empty()) std::cerr << "train: " << r.precision_note << "\n";

  nlohmann::json rec = run_record("train", a.ctx);
  rec["run"] = a.to_json();
  rec["data"] = {{"name", ds.name}, {"n", ds.x.n}, {"d", ds.x.d}};
  rec["coupling"] = coupling->name();
  rec["result"] = result_json(r);
  if (!a.resume.empty() && a.steps_given && r.termination != Termination::NumericalFailure)
    write_file_atomic(dir + "/run.json", a.to_json().dump(2) + "\n");
  write_json(dir + "/record.json", rec);
  if (!a.record.empty()) write_json(a.record, rec);
  std::cout << nlohmann::json{{"steps", r.steps},
                              {"loss", r.history.empty() ? 0.0 : r.history.back().loss},
                              {"steps_per_second", r.steps_per_second},
                              {"coupling_fraction", r.seconds > 0 ? r.coupling_seconds / r.seconds : 0.0},
                              {"parameters", r.parameters},
                              {"model", dir + "/model.pt"}}
                   .dump()
            << "\n";
  if (r.termination == Termination::NumericalFailure) throw Error("train: " + r.message);
  if (r.stopped) {
    std::cerr << "train: interrupted after step " << r.steps << " of " << a.opt.steps
              << "; checkpoint and model.pt written; continue with: otgen train --resume " << dir << "\n";
    std::exit(130);
  }
}

void register_train(CLI::App& root) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = root.add_subcommand("train", "train a flow-matching model (velocity field) with any coupling");
  auto& o = a->opt;
  cmd->add_option("--data", a->data, "dataset name (8gaussians, moons, digits, fashion-mnist, ...) or an (N, d) .npy")
      ->capture_default_str();
  cmd->add_option("--n", a->n, "data points (0 = the dataset's default; the first n of a .npy)");
  cmd->add_option("--data-seed", a->data_seed, "seed of generated datasets");
  cmd->add_option("--coupling", a->coupling, "independent | exact | sinkhorn | semidiscrete")->capture_default_str();
  cmd->add_option("--potential", a->potential, "semidiscrete: the potential g.npy of `otgen sdot fit` (default: fit it first)");
  cmd->add_flag("--allow-foreign-potential", a->allow_foreign_potential,
                "use --potential even when its sidecar (g.npy.json) says it was fitted on other data or labels");
  cmd->add_option("--sd-epsilon", a->sd_epsilon, "semidiscrete: absolute epsilon of the potential (0 = argmax pairs)")
      ->capture_default_str();
  cmd->add_option("--fit-steps", a->fit_steps, "semidiscrete without --potential: steps of the fit")->capture_default_str();
  cmd->add_option("--sinkhorn-epsilon", a->sinkhorn_epsilon,
                  "sinkhorn: absolute epsilon (default: 0.05 x std(C) of each batch pair)")
      ->each([a](const std::string&) { a->sinkhorn_epsilon_given = true; });
  cmd->add_flag("--relative-epsilon", a->relative_epsilon_flag, "sinkhorn: --sinkhorn-epsilon is a multiple of std(C) of each batch pair");
  cmd->add_flag("--conditional", a->conditional, "class-conditional model on the data's labels (guidance-ready)");
  cmd->add_option("--labels", a->labels, "per-point classes of a .npy --data: (N,) int64 .npy (implies --conditional)");
  cmd->add_option("--label-dropout", o.label_dropout, "conditional: probability of the null class in training (CFG)")
      ->capture_default_str();
  cmd->add_option("--class-penalty", a->class_penalty,
                  "conditional semidiscrete: beta of c + beta [k != l] (default inf = one potential per class)");
  cmd->add_flag("--meanflow", o.model.meanflow, "MeanFlow: learn the average velocity u(x, t, r) (1- and 2-step sampling)");
  cmd->add_option("--mf-ratio", o.mf_ratio, "meanflow: fraction of the batch with r != t")->capture_default_str();
  cmd->add_option("--mf-power", o.mf_power, "meanflow: p of the adaptive loss weight 1 / (loss + c)^p")
      ->capture_default_str();
  cmd->add_option("--mf-c", o.mf_c, "meanflow: c of the adaptive loss weight")->capture_default_str();
  cmd->add_option("--model", a->model, "mlp | unet")->capture_default_str();
  cmd->add_option("--width", o.model.width, "mlp: hidden width")->capture_default_str();
  cmd->add_option("--depth", o.model.depth, "mlp: hidden layers")->capture_default_str();
  cmd->add_option("--time-dim", o.model.time_dim, "mlp: time embedding size")->capture_default_str();
  cmd->add_option("--time-scale", o.model.time_scale, "time embedding: frequencies up to this (default 1000; 1 with --meanflow)")
      ->each([a](const std::string&) { a->time_scale_given = true; });
  cmd->add_option("--channels", o.model.base_channels, "unet: channels of the first level")->capture_default_str();
  cmd->add_option("--mults", a->mults, "unet: channel multipliers per level")->capture_default_str();
  cmd->add_option("--groups", o.model.groups, "unet: GroupNorm groups")->capture_default_str();
  cmd->add_option("--image-side", o.model.image_side, "unet: image side for .npy data (default sqrt(d))");
  cmd->add_option("--batch", o.batch, "pairs per step")->capture_default_str();
  cmd->add_option("--steps", o.steps, "optimiser steps (with --resume: the new total)")
      ->capture_default_str()
      ->each([a](const std::string&) { a->steps_given = true; });
  cmd->add_option("--time", a->time, "time sampling: uniform | logit-normal")->capture_default_str();
  cmd->add_option("--logit-mean", o.logit_mean, "logit-normal: mean")->capture_default_str();
  cmd->add_option("--logit-std", o.logit_std, "logit-normal: standard deviation")->capture_default_str();
  cmd->add_option("--optimizer", a->optimizer, "adam | adamw")->capture_default_str();
  cmd->add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--weight-decay", o.weight_decay, "adamw: decoupled weight decay")->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "linear learning-rate warm-up steps")->capture_default_str();
  cmd->add_option("--schedule", a->schedule, "after warm-up: constant | cosine")->capture_default_str();
  cmd->add_option("--lr-final", o.lr_final, "cosine: final learning rate")->capture_default_str();
  cmd->add_option("--ema-decay", o.ema_decay, "EMA of the weights (sampling uses it)")->capture_default_str();
  cmd->add_option("--grad-clip", o.grad_clip, "clip the gradient norm (0 = off)")->capture_default_str();
  cmd->add_option("--precision", a->precision, "fp32 | bf16 (autocast; needs AVX512-BF16 or AMX)")->capture_default_str();
  cmd->add_option("--checkpoint-every", o.checkpoint_every, "checkpoint every K steps (0 = at the end)")
      ->capture_default_str();
  cmd->add_option("--log-every", o.log_every, "loss history every K steps")->capture_default_str();
  cmd->add_option("--out", a->out, "run folder: model.pt, checkpoint.pt, run.json, record.json");
  cmd->add_option("--resume", a->resume, "continue the run in this folder from its checkpoint (same options)");
  cmd->add_option("--record", a->record, "also write the run record (JSON) here");
  add_context_options(cmd, a->ctx);
  cmd->callback([a] { run_train(*a); });
}

// ------------------------------------------------------------------------------------------ sample

struct SampleArgs {
  std::string model, solver = "euler", out, png, noise, reference, class_, labels_out;
  double guidance = 1.0;
  int64_t n = 1000;
  int64_t trajectories = 0;
  OdeOptions ode;
  Context ctx;
  // --sde: the weighted SDE twin (otgen/flow_sde.h)
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

void run_sample(SampleArgs& a) {
  a.ctx.validate();
  a.ode.method = parse_ode_method(a.solver, "--solver");
  a.ode.validate();
  require(a.n >= 1 && a.n <= (int64_t{1} << 28), "--n", a.n, "an integer in [1, 2^28]");
  require(!a.out.empty(), "--out", "missing", "an output .npy path");
  const FlowModel model = FlowModel::load(a.model, "--model");
  require_output_file(a.out, "--out", {{"--model", &a.model}, {"--noise", &a.noise}, {"--reference", &a.reference}});
  if (!a.png.empty())
    require_output_file(a.png, "--png", {{"--model", &a.model}, {"--noise", &a.noise}, {"--reference", &a.reference},
                                         {"--out", &a.out}});
  if (!a.labels_out.empty())
    require_output_file(a.labels_out, "--labels-out", {{"--model", &a.model}, {"--noise", &a.noise},
                                                       {"--reference", &a.reference}, {"--out", &a.out}, {"--png", &a.png}});
  for (const auto& [path, arg] : {std::pair{&a.logw_out, "--logw-out"}, std::pair{&a.record, "--record"}})
    if (!path->empty())
      require_output_file(*path, arg, {{"--model", &a.model}, {"--noise", &a.noise}, {"--reference", &a.reference},
                                       {"--out", &a.out}, {"--png", &a.png}, {"--labels-out", &a.labels_out}});
  const int64_t d = model.dim(), K = model.num_classes();
  // The classes: none (unconditional, or a conditional model's null class), one class for all rows,
  // or `all`: --n rows of each class in turn.
  std::vector<int64_t> labels;
  int64_t per_class = 0;
  if (!a.class_.empty()) {
    require(K > 0, "--class", "'" + a.class_ + "'", "a conditional model (this one was trained without classes)");
    if (a.class_ == "all") {
      require(a.noise.empty(), "--class", "all", "a single class with --noise");
      require(a.n <= (int64_t{1} << 28) / K, "--n", a.n, "at most 2^28 / classes per class with --class all");
      per_class = a.n;
      a.n *= K;
    } else {
      const std::vector<int64_t> k = parse_list(a.class_, "--class");
      require(k.size() == 1 && k[0] >= 0 && k[0] < K, "--class", "'" + a.class_ + "'",
              "a class in [0, " + std::to_string(K) + ") or all");
      labels.assign(1, k[0]);
    }
  }
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
  Points x;
  if (a.noise.empty()) {
    x = sdot_noise(a.n, d, a.ctx.seed, a.ctx);
  } else {
    x = read_points_npy(a.noise, "--noise");
    require(x.d == d, "--noise", "dimension " + std::to_string(x.d), "the model's dimension " + std::to_string(d));
    require(x.n >= 1, "--noise", "0 rows", "at least one starting point");
    a.n = x.n;
  }
  if (per_class > 0) {
    labels.resize(static_cast<size_t>(a.n));
    for (int64_t i = 0; i < a.n; ++i) labels[i] = i / per_class;
  } else if (labels.size() == 1) {
    labels.assign(static_cast<size_t>(a.n), labels[0]);
  }
  if (a.sde) {
    require(a.noise.empty(), "--noise", "'" + a.noise + "'", "no start points with --sde (it starts from N(0, I / temperature))");
    require(per_class == 0, "--class", "all", "a single class with --sde");
    require(a.cmd->count("--solver") == 0, "--solver", a.solver, "no solver with --sde (it takes Euler-Maruyama steps)");
    require(a.trajectories == 0, "--trajectories", a.trajectories, "0 with --sde");
    run_sample_sde(a, model, labels.empty() ? -1 : labels[0], ref);
    return;
  }
  for (const char* opt : {"--sde-noise", "--noise-schedule", "--tilt", "--tilt-drift", "--temperature", "--ess-threshold",
                          "--resample", "--no-weights", "--no-final-resample", "--logw-out", "--record"})
    require(a.cmd->count(opt) == 0, opt, "given", "--sde (an option of the weighted SDE sampler)");
  const FlowModel::Condition cond{labels, a.guidance};
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
    std::vector<int64_t> l = labels.empty() ? std::vector<int64_t>(static_cast<size_t>(a.n), K > 0 ? K : 0) : labels;
    write_npy(a.labels_out, l, {a.n});
    summary["labels_out"] = a.labels_out;
  }
  if (a.ode.method == OdeMethod::Dopri5) summary["accepted"] = r.accepted, summary["rejected"] = r.rejected;
  if (!a.png.empty()) {
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
    summary["png"] = a.png;
  }
  std::cout << summary.dump() << "\n";
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

OTGEN_REGISTER_COMMAND("train", register_train);
OTGEN_REGISTER_COMMAND("sample", register_sample);

}  // namespace otgen::cli
