// Flow matching (SPEC.md §3): train a velocity field v(t, x) that carries noise (t = 0) to data
// (t = 1), sample it with an ODE solver, and export it as TorchScript. Implemented with LibTorch in
// the otgen_flow library; this header is torch-free, so front ends that include it compile fast.
//
//   Loss      E_{t, (x0, x1) ~ pi} || v(t, x_t) - (x1 - x0) ||^2,  x_t = (1 - t) x0 + t x1,
//             summed over dimensions, averaged over the batch; x0 ~ N(0, I).
//   Coupling  pi is any otgen::Coupling (independent, batch OT, semidiscrete): pairs are drawn by it.
//   Sampling  dx/dt = v(t, x) from t = 0 to 1 with otgen/ode/ode.h (EMA weights).
//
// Conditional models (ModelSpec::num_classes > 0) take a class y in [0, K] (K = the null class of
// classifier-free guidance); training drops the label to K with probability label_dropout and draws
// the noise classes from the coupling's class weights (the weights b summed per class). Guided
// velocity: v_K + w (v_y - v_K).
//
// MeanFlow models (ModelSpec::meanflow) learn the average velocity u(x, t, r) = 1/(r - t) int_t^r v ds
// over [t, r] (r >= t, the destination time) of the trajectory through x at time t, so that one jump
// x_r = x_t + (r - t) u(x_t, t, r) follows the flow; u(x, t, t) = v(t, x). Training target (SPEC.md §3,
// in otgen's direction): u_tgt = v - (t - r) du/dt with du/dt the forward-mode JVP of u along
// (dx, dt, dr) = (v, 1, 0), v = x1 - x0, stop-gradient on the target, loss weighted per sample by
// 1 / stopgrad(|u - u_tgt|^2 + c)^p.
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

#include "otgen/core/context.h"
#include "otgen/coupling/coupling.h"
#include "otgen/wfr/flow_sde.h"
#include "otgen/ode/ode.h"
#include "otgen/core/points.h"
#include "otgen/core/termination.h"

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
//   emb(t) = [sin(s t f_k), cos(s t f_k)], f_k = 10000^(-k / half), k < half (sinusoidal), s = time_scale.
struct ModelSpec {
  ModelKind kind = ModelKind::Mlp;
  int64_t dim = 0;              // data dimension (flattened); set from the data
  int64_t width = 128;          // mlp: hidden width
  int64_t depth = 3;            // mlp: hidden layers
  int64_t time_dim = 32;        // mlp: sinusoidal embedding size (even)
  double time_scale = 1000.0;   // s of emb(t): frequencies up to s (MeanFlow models need a small s: the
                                // JVP's d/dt scales with it)
  int64_t image_side = 0;       // unet: images are channels x side x side, dim = channels * side^2
  int64_t channels = 1;         // unet
  int64_t base_channels = 32;   // unet: channels of the first level (a multiple of groups)
  std::vector<int64_t> mults = {1, 2, 2};  // unet: channel multiplier per level
  int64_t groups = 8;           // unet: GroupNorm groups
  int64_t num_classes = 0;      // > 0: class-conditional, a learned embedding of y in [0, K] (K = null)
                                // added to the time embedding (unet) or concatenated (mlp, time_dim wide)
  bool meanflow = false;        // a second time input r: MeanFlow's average velocity u(x, t, r)
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
  double label_dropout = 0.1;   // conditional: probability of training on the null class (CFG)
  double mf_ratio = 0.25;       // meanflow: fraction of the batch with r != t (official JAX 0.25,
                                // the PyTorch CIFAR port 0.75); the rest trains u(x, t, t) = v
  double mf_power = 1.0;        // meanflow: p of the adaptive weight 1 / (loss + c)^p (0 = plain mean)
  double mf_c = 0.01;           // meanflow: c of the adaptive weight
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

class FlowModel;

// The class condition of a batch: labels empty (the null class of a conditional model; nothing for an
// unconditional one) or one class in [0, K) per row; guidance w (conditional models with labels):
// v_K + w (v_y - v_K), one network evaluation at w = 0 or 1, two (batched) otherwise.
struct FlowCondition {
  std::span<const int64_t> labels;
  double guidance = 1.0;
  void validate(const FlowModel& m, int64_t n) const;  // names --class and --guidance
  bool two_passes(const FlowModel& m) const;           // two network evaluations per velocity
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

  int64_t num_classes() const { return spec().num_classes; }
  bool meanflow() const { return spec().meanflow; }

  using Condition = FlowCondition;

  // v(t, x) for a batch: x (n, dim), out (n * dim). MeanFlow models: u(x, t, t).
  void velocity(double t, PointsView x, std::span<float> out, const Context& ctx, const Condition& c = {}) const;
  // MeanFlow models: the average velocity u(x, t, r) over [t, r]. Throws for flow models.
  void mean_velocity(double t, double r, PointsView x, std::span<float> out, const Context& ctx,
                     const Condition& c = {}) const;
  // Integrates x (n, dim) in place from t = 0 to 1. MeanFlow models with method Euler take `steps`
  // mean-flow jumps x += h u(x, t, t + h) (one network evaluation each); other methods integrate
  // u(x, t, t). OdeResult::nfe counts network evaluations (twice the solver's with two-pass guidance).
  OdeResult sample(Points& x, const OdeOptions& ode, const Context& ctx, const OdeObserver& observe = {},
                   const Condition& c = {}) const;

  // The model as a field for the weighted SDE sampler (otgen/wfr/flow_sde.h): its velocity at `label`'s
  // class (-1: the null class of a conditional model, or an unconditional model), the conditional and
  // null velocities when the sampler asks for guidance parts, and the exact divergence div_x v by
  // forward-mode AD (one JVP per coordinate, batched: dim extra rows per particle). MeanFlow models
  // give u(x, t, t). Throws otgen::Error naming --class for a class the model does not have.
  FlowFieldFn field(int64_t label, const Context& ctx) const;

  // The network in float64 (a float64 copy of the weights), for tests and diagnostics: the output at
  // (x, t, r, y) (x: n * dim; t, r: n; r only for MeanFlow models, y only for conditional ones) and,
  // when `tangent` is given, its forward-mode directional derivative along (dx, dt, dr) — the JVP the
  // MeanFlow trainer uses.
  std::vector<double> evaluate_f64(std::span<const double> x, std::span<const double> t, std::span<const double> r,
                                   std::span<const int64_t> y, std::span<const double> dx = {},
                                   std::span<const double> dt = {}, std::span<const double> dr = {},
                                   std::vector<double>* tangent = nullptr) const;

  // TorchScript module (forward(x: Tensor[B, dim], t: Tensor[B]) -> Tensor[B, dim]; with r: Tensor[B]
  // after t for MeanFlow models and y: int64 Tensor[B] last for conditional ones) with the metadata
  // in the extra file "otgen.json"; written atomically.
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
// Called with each step's noise batch, the data rows the coupling paired it with and the noise rows'
// classes (empty for unconditional training) (for tests and diagnostics).
using PairsObserver = std::function<void(int64_t step, PointsView x0, std::span<const int64_t> target,
                                         std::span<const int64_t> noise_labels)>;

// Trains a model on pairs drawn by `coupling` from `data` (opt.model.dim must equal data.x.d; a
// conditional model needs labelled data with opt.model.num_classes = data.num_classes).
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
