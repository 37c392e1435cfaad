// Flow matching (SPEC.md §3): train a velocity field v(t, x) that carries noise (t = 0) to data
// (t = 1), sample it with an ODE solver, and export it as TorchScript. Implemented with LibTorch in
// the otgen_flow library; this header is torch-free, so front ends that include it compile fast.
//
//   Loss      E_{t, (x0, x1) ~ pi} || v(t, x_t) - (x1 - x0) ||^2,  x_t = (1 - t) x0 + t x1,
//             summed over dimensions, averaged over the batch; x0 ~ N(0, I).
//   Coupling  pi is any otgen::Coupling (independent, batch OT, semidiscrete): pairs are drawn by it.
//   Sampling  dx/dt = v(t, x) from t = 0 to 1 with otgen/ode.h (EMA weights).
//
// Determinism: the initial weights are a function of the seed, and the noise, times and pairs of step
// k of (seed, k) (steps are drawn in chunks aligned to step 0), so a run resumed from a checkpoint
// equals the uninterrupted run bit for bit at the same thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "otgen/context.h"
#include "otgen/coupling.h"
#include "otgen/ode.h"
#include "otgen/points.h"
#include "otgen/termination.h"

namespace otgen::flow {

enum class ModelKind { Mlp, Unet };
enum class TimeSampling { Uniform, LogitNormal };
enum class OptimizerKind { Adam, AdamW };
enum class LrSchedule { Constant, Cosine };
enum class Precision { Fp32, Bf16 };

// Names for the CLI and records: "mlp" "unet"; "uniform" "logit-normal"; "adam" "adamw";
// "constant" "cosine"; "fp32" "bf16". Parsers throw otgen::Error naming `argument` and the valid names.
const char* to_string(ModelKind v);
const char* to_string(TimeSampling v);
const char* to_string(OptimizerKind v);
const char* to_string(LrSchedule v);
const char* to_string(Precision v);
ModelKind parse_model_kind(std::string_view s, std::string_view argument = "--model");
TimeSampling parse_time_sampling(std::string_view s, std::string_view argument = "--time");
OptimizerKind parse_optimizer(std::string_view s, std::string_view argument = "--optimizer");
LrSchedule parse_schedule(std::string_view s, std::string_view argument = "--schedule");
Precision parse_precision(std::string_view s, std::string_view argument = "--precision");

// The network. Inputs are flat: x (B, dim), t (B,); images are reshaped inside the U-Net.
//   mlp:  h = silu(W1 [x, emb(t)]), depth - 1 more silu(W h) layers of `width`, out = W h (dim).
//   unet: conv in, one residual block (GroupNorm, SiLU, 3x3 convs, time embedding added) per level
//         with channel multipliers `mults`, stride-2 downsampling, a middle block, nearest-neighbour
//         upsampling with skip concatenation, GroupNorm + SiLU + 3x3 conv out.
//   emb(t) = [sin(1000 t f_k), cos(1000 t f_k)], f_k = 10000^(-k / half), k < half (sinusoidal).
struct ModelSpec {
  ModelKind kind = ModelKind::Mlp;
  int64_t dim = 0;              // data dimension (flattened); set from the data
  int64_t width = 128;          // mlp: hidden width
  int64_t depth = 3;            // mlp: hidden layers
  int64_t time_dim = 32;        // mlp: sinusoidal embedding size (even)
  int64_t image_side = 0;       // unet: images are channels x side x side, dim = channels * side^2
  int64_t channels = 1;         // unet
  int64_t base_channels = 32;   // unet: channels of the first level (a multiple of groups)
  std::vector<int64_t> mults = {1, 2, 2};  // unet: channel multiplier per level
  int64_t groups = 8;           // unet: GroupNorm groups
  void validate() const;        // names fields as CLI options (--width, --depth, ...)
  nlohmann::json to_json() const;
  static ModelSpec from_json(const nlohmann::json& j);  // throws otgen::Error on a malformed spec
};

struct TrainOptions {
  ModelSpec model;
  int64_t batch = 256;          // pairs per step (>= 1)
  int64_t steps = 3000;         // total optimiser steps (>= 1)
  TimeSampling time = TimeSampling::Uniform;
  double logit_mean = 0.0, logit_std = 1.0;  // logit-normal: t = sigmoid(N(mean, std^2))
  OptimizerKind optimizer = OptimizerKind::Adam;
  double lr = 1e-3;             // peak learning rate (> 0)
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  double weight_decay = 0.0;    // AdamW: decoupled decay (>= 0); Adam: must be 0
  int64_t warmup = 0;           // linear warm-up steps from 0 to lr (>= 0, < steps)
  LrSchedule schedule = LrSchedule::Constant;  // after warm-up: constant, or cosine down to lr_final
  double lr_final = 0.0;        // cosine: final learning rate (>= 0, <= lr)
  double ema_decay = 0.999;     // EMA of the weights, used for sampling and export; in [0, 1); step k
                                // uses min(ema_decay, (1 + k) / (10 + k)) (warm-up)
  double grad_clip = 0.0;       // clip the global gradient norm to this (0 = off)
  Precision precision = Precision::Fp32;  // bf16: autocast matmuls/convs to bf16 (fp32 master weights)
  int64_t checkpoint_every = 0; // write the checkpoint every K steps (0 = only at the end)
  int64_t log_every = 50;       // history entries (loss averaged over the interval) every K steps
  void validate() const;
  nlohmann::json to_json() const;
  static TrainOptions from_json(const nlohmann::json& j);
};

// One history entry: the mean loss (and mean coupling cost |x1 - x0|^2 / 2 of the pairs) over the
// steps since the previous entry.
struct TrainLogEntry {
  int64_t step = 0;        // steps done at the time of the entry
  double loss = 0;
  double pair_cost = 0;
  double lr = 0;
  double seconds = 0;      // wall time since the start (of the first run, across resumes)
};

struct TrainResult {
  int64_t steps = 0;                  // steps done in total
  int64_t resumed_from = 0;           // the checkpoint's step, 0 for a fresh run
  int64_t parameters = 0;
  double seconds = 0;                 // this run's training wall time
  double coupling_seconds = 0;        // ... of which drawing pairs (noise + coupling)
  double steps_per_second = 0;        // this run's steps / seconds
  Precision precision = Precision::Fp32;  // the precision that ran
  std::string precision_note;         // why bf16 fell back to fp32, if it did
  Termination termination = Termination::MaxSteps;  // MaxSteps, or NumericalFailure (NaN loss)
  bool stopped = false;               // the observer stopped the run before opt.steps
  std::string message;
  std::vector<TrainLogEntry> history; // from step 0, across resumes
};

// A trained velocity field (EMA weights) with its metadata. Cheap to copy (shared).
class FlowModel {
 public:
  // Loads a model.pt written by save() (TorchScript with otgen metadata). Throws otgen::Error naming
  // `argument` on a missing, corrupt or foreign file.
  static FlowModel load(const std::string& path, std::string_view argument = "--model");
  // A freshly initialised network (weights drawn from `seed`).
  static FlowModel init(const ModelSpec& spec, uint64_t seed);

  const ModelSpec& spec() const;
  int64_t dim() const { return spec().dim; }
  int64_t parameters() const;
  // Extra metadata stored with the model (data name, classes, training summary), JSON object.
  const nlohmann::json& metadata() const;
  void set_metadata(nlohmann::json meta);

  // v(t, x) for a batch: x (n, dim), out (n * dim).
  void velocity(double t, PointsView x, std::span<float> out, const Context& ctx) const;
  // Integrates x (n, dim) in place from t = 0 to 1.
  OdeResult sample(Points& x, const OdeOptions& ode, const Context& ctx, const OdeObserver& observe = {}) const;

  // TorchScript module (forward(x: Tensor[B, dim], t: Tensor[B]) -> Tensor[B, dim]) with the
  // metadata in the extra file "otgen.json"; written atomically.
  void save(const std::string& path) const;

  struct Impl;
  explicit FlowModel(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<Impl> impl_;
};

// Where a run keeps its files: checkpoint.pt (model, EMA, optimiser state, history, options) and
// model.pt (EMA weights) in `dir`.
struct RunFiles {
  std::string dir;
  std::string checkpoint() const { return dir + "/checkpoint.pt"; }
  std::string model() const { return dir + "/model.pt"; }
};

// Progress callback: called after every step with the step count and the latest loss. Returning false
// stops the run there (e.g. on Ctrl-C): the checkpoint and model.pt are written as at the end, and
// TrainResult::stopped is set.
using TrainObserver = std::function<bool(int64_t step, double loss)>;
// Called with each step's noise batch and the data rows the coupling paired it with (for tests and
// diagnostics).
using PairsObserver = std::function<void(int64_t step, PointsView x0, std::span<const int64_t> target)>;

// Trains a model on pairs drawn by `coupling` from `data` (opt.model.dim must equal data.x.d).
// Writes files.checkpoint() every opt.checkpoint_every steps and at the end, and files.model().
// resume = true continues from files.checkpoint() (its options must equal opt except `steps`,
// which may grow). `meta` is stored in model.pt's metadata. Throws otgen::Error on bad options.
TrainResult train_flow(const TrainOptions& opt, const CouplingData& data, const Coupling& coupling,
                       const RunFiles& files, bool resume, const nlohmann::json& meta, const Context& ctx,
                       const TrainObserver& observe = {}, const PairsObserver& on_pairs = {});

// Reads the options stored in a checkpoint (for `--resume`). Throws otgen::Error naming `argument`.
TrainOptions checkpoint_options(const std::string& path, std::string_view argument = "--resume");

// Whether this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX-BF16), as the bf16 precision needs.
bool cpu_has_bf16();

}  // namespace otgen::flow
