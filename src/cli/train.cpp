// otgen train: flow-matching training with any coupling (kept resumable in RUN_DIR/run.json).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/chart.h"
#include "cli/plot.h"
#include "otgen/core/communicator.h"
#include "otgen/coupling/coupling.h"
#include "otgen/data/data.h"
#include "otgen/core/error.h"
#include "otgen/flow/flow.h"
#include "otgen/core/interrupt.h"
#include "otgen/core/npy.h"
#include "otgen/ot/potential_meta.h"
#include "otgen/core/progress.h"
#include "otgen/core/record.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/core/staging.h"
#include "otgen/core/streams.h"

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
      (void)read_potential_basis(a.potential, ds.x.d, "--potential");  // PCA: the basis beside it, checked
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
    fctx.comm = nullptr;  // data-parallel training: every rank fits the same potential on the whole data
    const auto r = SemidiscreteOT(so).fit(ds.x, {}, fctx, data.labels);
    if (r.termination == Termination::NumericalFailure) throw Error("semidiscrete fit: " + r.message);
    if (!a.ctx.quiet)
      std::cerr << "potential: " << r.steps << " steps, chi2 " << (r.chi2 ? to_text(*r.chi2) : "n/a") << " ("
                << r.seconds << " s)\n";
    a.potential = run_dir + "/potential.npy";
    if (a.ctx.communicator().rank() == 0) {
      write_npy(a.potential, r.g, {static_cast<int64_t>(r.g.size())});
      write_potential_meta(a.potential, potential_meta(ds.x, data.labels, {}, a.sd_epsilon,
                                                       SdotCost::SqEuclideanHalf, a.class_penalty));
    }
    return std::make_unique<SemidiscreteCoupling>(data, r.g, a.sd_epsilon, std::vector<double>{}, a.class_penalty);
  }
  const auto g = read_vector_npy(a.potential, "--potential");
  return std::make_unique<SemidiscreteCoupling>(data, std::vector<float>(g.begin(), g.end()), a.sd_epsilon,
                                                std::vector<double>{}, a.class_penalty,
                                                read_potential_basis(a.potential, ds.x.d, "--potential"));
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

// A new run: the options given as names, parsed (a resumed run reads them from run.json).
void parse_named_options(TrainArgs& a) {
  a.opt.model.kind = parse_model_kind(a.model, "--model");
  a.opt.time = parse_time_sampling(a.time, "--time");
  a.opt.optimizer = parse_optimizer(a.optimizer, "--optimizer");
  a.opt.schedule = parse_schedule(a.schedule, "--schedule");
  a.opt.precision = parse_precision(a.precision, "--precision");
  a.opt.model.mults = parse_int_list(a.mults, "--mults");
  if (a.opt.model.meanflow && !a.time_scale_given) a.opt.model.time_scale = 1.0;
  resolve_sinkhorn_epsilon(a);
}

// --resume RUN_DIR: the run's arguments from its run.json (a new --steps may extend it); the
// checkpoint is checked here.
void load_resumed_run(TrainArgs& a, const std::string& dir) {
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

// The data, with the model's dimension, classes and image side taken from it; every check of the
// options against the data.
Dataset load_checked_data(TrainArgs& a) {
  if (!a.labels.empty()) a.conditional = true;
  Dataset ds = load_data(a.data, a.n, a.data_seed, a.labels);
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
  return ds;
}

// The one-line description of the run on stderr.
void print_run(const TrainArgs& a, const Dataset& ds, const Coupling& coupling, int64_t params) {
  std::cerr << "train: " << (a.opt.model.meanflow ? "MeanFlow " : "") << to_string(a.opt.model.kind) << " ("
            << params << " parameters"
            << (a.conditional ? ", " + std::to_string(a.opt.model.num_classes) + " classes" : std::string()) << ") on "
            << ds.name << " (" << ds.x.n << " x " << ds.x.d << "), coupling " << coupling.name() << ", batch "
            << a.opt.batch << ", " << a.opt.steps << " steps, " << to_string(a.opt.precision) << ", "
            << a.ctx.resolved_threads() << " threads\n";
}

// The training loop under a progress bar (loss EMA and pairs/s); stops after the step once an
// interrupt was requested.
TrainResult train_with_progress(const TrainArgs& a, const Dataset& ds, const Coupling& coupling,
                                const std::string& dir) {
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
    return !interrupt_requested();
  };
  nlohmann::json meta{{"data", ds.name}, {"n", ds.x.n}, {"image_side", ds.image_side},
                      {"classes", a.opt.model.num_classes}, {"meanflow", a.opt.model.meanflow}};
  const TrainResult r = train_flow(a.opt, coupling_data(a, ds), coupling, RunFiles{dir},
                                   !a.resume.empty(), meta, a.ctx, observe);
  bar.finish();
  return r;
}

// record.json (and --record), run.json of a resume that extended the run, and the summary on stdout.
void write_train_outputs(const TrainArgs& a, const Dataset& ds, const Coupling& coupling, const TrainResult& r,
                         const std::string& dir) {
  const Communicator& comm = a.ctx.communicator();
  if (comm.rank() != 0) return;  // data-parallel: rank 0 writes
  nlohmann::json rec = run_record("train", a.ctx);
  if (comm.size() > 1) rec["ranks"] = comm.size();
  rec["run"] = a.to_json();
  rec["data"] = {{"name", ds.name}, {"n", ds.x.n}, {"d", ds.x.d}};
  rec["coupling"] = coupling.name();
  if (const std::string engine = coupling.engine(); !engine.empty()) rec["coupling_engine"] = engine;
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
}

void run_train(TrainArgs& a) {
  publish_as_written();  // the checkpoint and run.json must appear while the run goes on (--resume)
  if (a.resume.empty()) parse_named_options(a);
  a.ctx.validate();
  std::string dir;
  if (a.resume.empty()) {
    require(!a.out.empty(), "--out", "missing", "a run folder (or --resume RUN_DIR)");
    dir = a.out;
  } else {
    dir = a.resume;
    load_resumed_run(a, dir);
  }
  // Under mpirun (data-parallel, docs/dist.md): every rank checks alike and one message ends them all;
  // rank 0 alone prepares the folder, reports and writes.
  const Communicator& comm = a.ctx.communicator();
  const bool writer = comm.rank() == 0;
  if (!writer) a.ctx.quiet = true;
  // Everything that can fail on input fails here, before any training.
  Dataset ds;
  collectively(comm, [&] {
    ds = load_checked_data(a);
    require(a.opt.batch >= comm.size(), "--batch", a.opt.batch,
            "at least one row per rank (" + std::to_string(comm.size()) + " ranks)");
    if (a.resume.empty() && writer) prepare_output_folder(dir, "--out");
    if (!a.record.empty()) require_output_file(a.record, "--record", {{"--data", &a.data}});
  });
  std::unique_ptr<Coupling> coupling;
  collectively(comm, [&] { coupling = make_coupling(a, ds, dir); });
  // The run's description (a resume with a new --steps records the new total once it has trained).
  if (a.resume.empty() && writer) write_file_atomic(dir + "/run.json", a.to_json().dump(2) + "\n");
  const int64_t params = FlowModel::init(a.opt.model, 0).parameters();
  if (!a.ctx.quiet) print_run(a, ds, *coupling, params);
  // Ctrl-C / SIGTERM: finish the step, write the checkpoint and model.pt, exit 130. Under mpirun the
  // default instead (every rank ends at once): a stop seen by one rank only would leave the others waiting.
  std::optional<InterruptScope> interrupts;
  if (comm.size() == 1) interrupts.emplace();
  const TrainResult r = train_with_progress(a, ds, *coupling, dir);
  if (!r.precision_note.empty()) std::cerr << "train: " << r.precision_note << "\n";
  write_train_outputs(a, ds, *coupling, r, dir);
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

}  // namespace

OTGEN_REGISTER_COMMAND("train", register_train);

}  // namespace otgen::cli
