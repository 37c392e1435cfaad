// Flow-matching trainer (otgen/flow/flow.h): pairs from a Coupling, Adam/AdamW with warm-up and cosine
// decay, EMA weights, gradient clipping, bf16 autocast, atomic checkpoints and bit-exact resume.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/api/include/torch/serialize/input-archive.h>
#include <torch/csrc/api/include/torch/serialize/output-archive.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "flow/net.h"
#include "otgen/core/communicator.h"
#include "otgen/core/error.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/core/streams.h"

namespace otgen::flow {
namespace {

using detail::Net;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The learning rate of step k (0-based).
double learning_rate(const TrainOptions& o, int64_t k) {
  if (k < o.warmup) return o.lr * static_cast<double>(k + 1) / static_cast<double>(o.warmup);
  if (o.schedule == LrSchedule::Constant) return o.lr;
  const double p = static_cast<double>(k - o.warmup) / static_cast<double>(std::max<int64_t>(1, o.steps - o.warmup));
  return o.lr_final + (o.lr - o.lr_final) * 0.5 * (1.0 + std::cos(M_PI * p));
}

// FNV-1a over the data, labels and shape: a resumed run must see the same data.
uint64_t fingerprint(const CouplingData& data) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* p, size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 1099511628211ull;
  };
  mix(&data.x.n, sizeof data.x.n);
  mix(&data.x.d, sizeof data.x.d);
  mix(data.x.data, static_cast<size_t>(data.x.n * data.x.d) * sizeof(float));
  if (!data.labels.empty()) mix(data.labels.data(), data.labels.size() * sizeof(int64_t));
  return h;
}

// Everything a run carries from step to step. The parameters, their gradients, the Adam moments and
// the EMA each live in one flat buffer; the per-tensor entries are views into it, so the optimiser
// updates all parameters with a handful of operations instead of ten per tensor.
struct State {
  Net net;                          // trained weights: views of w (require grad, grads are views of g)
  at::Tensor w, g, m, v, ema;       // flat buffers
  std::vector<at::Tensor> m_of, v_of, ema_of;  // per-tensor views of m, v, ema
  int64_t step = 0;
  double elapsed = 0;               // wall time of earlier runs (for the history's clock)
  std::vector<TrainLogEntry> history;

  // Per-tensor views of a flat buffer, shaped like the parameters.
  std::vector<at::Tensor> views(const at::Tensor& flat) const {
    std::vector<at::Tensor> out;
    int64_t off = 0;
    for (const auto& p : net.params) {
      out.push_back(flat.narrow(0, off, p.numel()).view(p.sizes()));
      off += p.numel();
    }
    return out;
  }
  // Moves the freshly created parameters into the flat buffers (EMA = weights, moments 0).
  void flatten() {
    const int64_t total = net.numel();
    w = at::empty({total}, at::kFloat);
    const auto wv = views(w);
    for (size_t p = 0; p < wv.size(); ++p) wv[p].copy_(net.params[p]);
    net.params = wv;
    g = at::zeros({total}, at::kFloat);
    m = at::zeros({total}, at::kFloat);
    v = at::zeros({total}, at::kFloat);
    ema = w.clone();
    m_of = views(m);
    v_of = views(v);
    ema_of = views(ema);
  }
  void attach_grads() {
    const auto gv = views(g);
    for (size_t p = 0; p < gv.size(); ++p) {
      net.params[p].requires_grad_(true);
      net.params[p].mutable_grad() = gv[p];
    }
  }
};

nlohmann::json history_json(const std::vector<TrainLogEntry>& h) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& e : h) a.push_back({e.step, e.loss, e.pair_cost, e.lr, e.seconds});
  return a;
}

std::vector<TrainLogEntry> history_from(const nlohmann::json& a) {
  std::vector<TrainLogEntry> h;
  for (const auto& e : a) h.push_back({e.at(0).get<int64_t>(), e.at(1).get<double>(), e.at(2).get<double>(),
                                       e.at(3).get<double>(), e.at(4).get<double>()});
  return h;
}

// The run after `step` steps and `elapsed` seconds of training in all.
void save_checkpoint(const std::string& path, const State& s, int64_t step, double elapsed, const TrainOptions& opt,
                     const std::string& coupling, uint64_t data_hash) {
  torch::serialize::OutputArchive ar;
  const nlohmann::json meta{{"format", "otgen.checkpoint/1"}, {"options", opt.to_json()}, {"step", step},
                            {"elapsed", elapsed},           {"coupling", coupling},       {"data_hash", data_hash},
                            {"history", history_json(s.history)}};
  ar.write("meta", c10::IValue(meta.dump()));
  for (size_t p = 0; p < s.net.params.size(); ++p) {
    const std::string& n = s.net.names[p];
    ar.write("p." + n, s.net.params[p].detach().clone());
    ar.write("ema." + n, s.ema_of[p].clone());
    ar.write("m." + n, s.m_of[p].clone());
    ar.write("v." + n, s.v_of[p].clone());
  }
  detail::atomic_save(path, [&](const std::string& tmp) { ar.save_to(tmp); });
}

nlohmann::json read_checkpoint_meta(torch::serialize::InputArchive& ar, const std::string& path, std::string_view argument) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail_argument(argument, "'" + path + "'", "a run folder with checkpoint.pt (written by otgen train)");
  try {
    ar.load_from(path);
    c10::IValue v;
    ar.read("meta", v);
    nlohmann::json meta = nlohmann::json::parse(v.toStringRef());
    if (meta.value("format", "") != "otgen.checkpoint/1") throw Error("format");
    return meta;
  } catch (const std::exception&) {
    fail_argument(argument, "'" + path + "'", "an otgen checkpoint (it is missing, truncated or of another format)");
  }
}

void load_state(State& s, torch::serialize::InputArchive& ar, const std::string& path) {
  auto read = [&](const std::string& key, const at::Tensor& like) {
    at::Tensor t;
    try {
      ar.read(key, t);
    } catch (const std::exception&) {
      fail_argument("--resume", "'" + path + "'", "a checkpoint holding " + key);
    }
    if (t.sizes() != like.sizes() || t.scalar_type() != at::kFloat)
      fail_argument("--resume", "'" + path + "'", "a checkpoint whose " + key + " matches the model");
    return t.contiguous();
  };
  for (size_t p = 0; p < s.net.params.size(); ++p) {
    const std::string& n = s.net.names[p];
    s.net.params[p].copy_(read("p." + n, s.net.params[p]));
    s.ema_of[p].copy_(read("ema." + n, s.ema_of[p]));
    s.m_of[p].copy_(read("m." + n, s.m_of[p]));
    s.v_of[p].copy_(read("v." + n, s.v_of[p]));
  }
}

// The checks of train_flow's inputs.
void check_inputs(const TrainOptions& opt, const CouplingData& data, const RunFiles& files, const Context& ctx) {
  opt.validate();
  ctx.validate();
  data.validate();
  require(opt.model.dim == data.x.d, "model dim", opt.model.dim, "the data dimension " + std::to_string(data.x.d));
  const int64_t K = opt.model.num_classes;
  if (K > 0) {
    require(!data.labels.empty(), "--conditional", "given", "labelled data (the dataset's labels or --labels)");
    require(data.num_classes == K, "classes", K, "the data's " + std::to_string(data.num_classes) + " classes");
  }
  std::error_code ec;
  require(std::filesystem::is_directory(files.dir, ec), "--out", "'" + files.dir + "'", "an existing folder");
  const int ranks = ctx.communicator().size();
  require(opt.batch >= ranks, "--batch", opt.batch, "at least one row per rank (" + std::to_string(ranks) + " ranks)");
}

// --resume: the checkpointed run's step, clock, history and tensors into s, after checking that its options
// (but steps), coupling and data are this run's. Returns the checkpoint's step.
int64_t resume_state(State& s, const TrainOptions& opt, const Coupling& coupling, const RunFiles& files,
                     uint64_t data_hash) {
  torch::serialize::InputArchive ar;
  const auto cm = read_checkpoint_meta(ar, files.checkpoint(), "--resume");
  nlohmann::json saved = cm.at("options"), now = opt.to_json();
  saved.erase("steps");
  now.erase("steps");
  if (saved != now) fail_argument("--resume", "'" + files.dir + "'", "the options of the checkpointed run");
  if (cm.at("coupling").get<std::string>() != coupling.name())
    fail_argument("--coupling", coupling.name(), "the checkpointed run's " + cm.at("coupling").get<std::string>());
  if (cm.at("data_hash").get<uint64_t>() != data_hash)
    fail_argument("--data", "different data", "the data of the checkpointed run");
  s.step = cm.at("step").get<int64_t>();
  require(s.step <= opt.steps, "--steps", opt.steps, "at least the checkpoint's " + std::to_string(s.step) + " steps");
  s.elapsed = cm.at("elapsed").get<double>();
  s.history = history_from(cm.at("history"));
  load_state(s, ar, files.checkpoint());
  return s.step;
}

// Conditional: the noise classes' cumulative distribution (the coupling's class weights).
std::vector<double> class_cdf(const Coupling& coupling, int64_t K) {
  std::vector<double> cdf;
  const std::vector<double> w = coupling.class_weights();
  require(static_cast<int64_t>(w.size()) == K, "class weights", w.size(), "one per class");
  double acc = 0;
  for (const double p : w) cdf.push_back(acc += p);
  for (double& c : cdf) c /= acc;
  return cdf;
}

// A time from the training distribution.
double draw_time(const TrainOptions& opt, Rng& rng) {
  return opt.time == TimeSampling::Uniform ? rng.uniform()
                                           : 1.0 / (1.0 + std::exp(-(opt.logit_mean + opt.logit_std * rng.normal())));
}

// One step's batch: the interpolants x_t, the targets u = x1 - x0, the times (t, and MeanFlow's r) and the
// classes, each a tensor viewing its buffer.
struct Batch {
  std::vector<float> xt, u, tv, rv;
  std::vector<int64_t> yv;
  at::Tensor xt_t, u_t, t_t, r_t, y_t, ones_t, zeros_t;

  Batch(int64_t B, int64_t d, bool mf, bool conditional)
      : xt(static_cast<size_t>(B * d)), u(static_cast<size_t>(B * d)), tv(static_cast<size_t>(B)),
        rv(static_cast<size_t>(B)), yv(static_cast<size_t>(B)) {
    xt_t = at::from_blob(xt.data(), {B, d}, at::kFloat);
    u_t = at::from_blob(u.data(), {B, d}, at::kFloat);
    t_t = at::from_blob(tv.data(), {B}, at::kFloat);
    r_t = mf ? at::from_blob(rv.data(), {B}, at::kFloat) : at::Tensor();
    y_t = conditional ? at::from_blob(yv.data(), {B}, at::kLong) : at::Tensor();
    ones_t = at::ones({B}, at::kFloat);
    zeros_t = at::zeros({B}, at::kFloat);
  }
  Batch(const Batch&) = delete;  // the tensors view the buffers
  Batch& operator=(const Batch&) = delete;
};

// The pairs of the `size` steps one coupling call draws (aligned to multiples of `size` from step 0, so a
// resumed run redraws exactly the same chunk).
struct Chunk {
  int64_t size = 1, first = 0, steps = 0;
  Points x0;
  std::vector<int64_t> target, labels;
  bool holds(int64_t k) const { return k >= first && k < first + steps; }
};

// The step loop of train_flow on a set-up (fresh or resumed) state.
class Trainer {
 public:
  Trainer(const TrainOptions& opt, const CouplingData& data, const Coupling& coupling, const RunFiles& files,
          const Context& ctx, const PairsObserver& on_pairs, uint64_t data_hash, State& s, TrainResult& res)
      : opt_(opt), data_(data), coupling_(coupling), files_(files), ctx_(ctx), on_pairs_(on_pairs),
        data_hash_(data_hash), s_(s), res_(res), B_(opt.batch), d_(data.x.d), K_(opt.model.num_classes),
        mf_(opt.model.meanflow), batch_(B_, d_, mf_, K_ > 0), comm_(ctx.communicator()),
        mine_(row_range(B_, comm_.rank(), comm_.size())) {
    pairs_ctx_.comm = nullptr;  // every rank draws the whole batch's pairs, as one process does
    if (K_ > 0) class_cdf_ = class_cdf(coupling, K_);
    chunk_.size = coupling.rows_independent() ? std::max<int64_t>(1, std::min<int64_t>(16, 4096 / B_)) : 1;
    t_start_ = Clock::now();
  }

  // Steps s.step .. opt.steps - 1, until the observer stops the run or the loss is not finite.
  void run(const TrainObserver& observe);

  // Written by rank 0 alone (every rank holds the same state).
  void checkpoint(int64_t step) const {
    if (comm_.rank() != 0) return;
    save_checkpoint(files_.checkpoint(), s_, step, s_.elapsed + seconds_since(t_start_), opt_, coupling_.name(),
                    data_hash_);
  }

 private:
  // Draws the pairs of chunk k / chunk.size: noise, noise classes and the coupling's targets.
  void draw_chunk(int64_t k);

  // The times of step k (and MeanFlow's r) and its classes after label dropout.
  void draw_times_and_classes(int64_t k, std::span<const int64_t> labels);

  // The batch of step k: noise and times from their own streams of (seed, k); the coupling's draws for a
  // chunk of steps at once where its rows are independent (one larger engine call). Returns the summed
  // pair cost |x1 - x0|^2 / 2.
  double draw_batch(int64_t k);

  // The batch's loss, its gradient in s.g.
  double loss_and_gradient();

  // Step k of Adam/AdamW at learning rate lr on the clipped gradient, and of the EMA.
  void update(int64_t k, double lr);

  // The history: the mean loss and pair cost of every log_every steps (and of the last ones).
  void record(int64_t done, double loss, double cost, double lr) {
    loss_acc_ += loss;
    cost_acc_ += cost / static_cast<double>(B_);
    ++acc_n_;
    if (done % opt_.log_every == 0 || done == opt_.steps) {
      s_.history.push_back({done, loss_acc_ / acc_n_, cost_acc_ / acc_n_, lr, s_.elapsed + seconds_since(t_start_)});
      loss_acc_ = cost_acc_ = 0;
      acc_n_ = 0;
    }
  }

  const TrainOptions& opt_;
  const CouplingData& data_;
  const Coupling& coupling_;
  const RunFiles& files_;
  const Context& ctx_;
  const PairsObserver& on_pairs_;
  const uint64_t data_hash_;
  State& s_;
  TrainResult& res_;
  const int64_t B_, d_, K_;
  const bool mf_;
  Batch batch_;
  std::vector<double> class_cdf_;
  Chunk chunk_;
  Clock::time_point t_start_;
  double loss_acc_ = 0, cost_acc_ = 0;
  int64_t acc_n_ = 0;
  // Data-parallel (a communicator of K > 1 ranks, docs/dist.md): every rank draws the whole batch and
  // runs the model on its rows `mine_` of it; the gradients (one flat buffer) and the loss are summed
  // over the ranks, so every rank takes the same optimiser step.
  const Communicator& comm_;
  const RowRange mine_;
  Context pairs_ctx_ = ctx_;

  // The local rows of a batch tensor (all of it for one process).
  at::Tensor mine(const at::Tensor& t) const {
    return comm_.size() > 1 && t.defined() ? t.narrow(0, mine_.begin, mine_.count()) : t;
  }
  // The batch mean of per-sample values: the loss to differentiate (K ranks: this rank's share of it).
  at::Tensor batch_mean(const at::Tensor& per_sample) const {
    return comm_.size() > 1 ? per_sample.sum() / static_cast<double>(B_) : per_sample.mean();
  }
  // The whole batch's gradient and loss from the ranks' shares.
  double combine(double loss) const;
};

double Trainer::combine(double loss) const {
  if (comm_.size() == 1) return loss;
  comm_.allreduce_sum(std::span<float>(s_.g.data_ptr<float>(), static_cast<size_t>(s_.g.numel())));
  std::vector<double> l{loss};
  comm_.allreduce_sum(std::span<double>(l));
  return l[0];
}

void Trainer::run(const TrainObserver& observe) {
  res_.termination = Termination::MaxSteps;
  for (; s_.step < opt_.steps; ++s_.step) {
    const int64_t k = s_.step;
    const auto t_pairs = Clock::now();
    const double cost = draw_batch(k);
    res_.coupling_seconds += seconds_since(t_pairs);
    const double loss = loss_and_gradient();
    if (!std::isfinite(loss)) {
      res_.termination = Termination::NumericalFailure;
      res_.message = "the loss became " + to_text(loss) + " at step " + std::to_string(k) +
                     ": lower --lr or set --grad-clip; the last checkpoint is kept";
      break;
    }
    const double lr = learning_rate(opt_, k);
    update(k, lr);
    const int64_t done = k + 1;
    record(done, loss, cost, lr);
    if (observe && !observe(done, loss)) {
      s_.step = done;
      res_.stopped = done < opt_.steps;
      break;
    }
    if (opt_.checkpoint_every > 0 && done % opt_.checkpoint_every == 0 && done < opt_.steps) checkpoint(done);
  }
  res_.seconds = seconds_since(t_start_);
}

void Trainer::draw_chunk(int64_t k) {
  Chunk& ch = chunk_;
  const int64_t c = k / ch.size;
  ch.first = c * ch.size;
  ch.steps = std::min(ch.size, opt_.steps - ch.first);
  // The chunk's noise: LibTorch's vectorised normal sampler on a generator seeded from (seed, chunk)
  // (deterministic; 5-10x faster than per-row Philox Box-Muller, a visible share of a small MLP step).
  ch.x0 = Points(ch.steps * B_, d_);
  at::Generator gen =
      at::make_generator<at::CPUGeneratorImpl>(stream_key(ctx_.seed, Stream::TrainNoise, static_cast<uint64_t>(c)));
  at::from_blob(ch.x0.data.data(), {ch.steps * B_, d_}, at::kFloat).normal_(0.0, 1.0, gen);
  ch.labels.clear();
  if (K_ > 0) {  // the noise classes, drawn from the class weights
    Rng lrng(stream_key(ctx_.seed, Stream::TrainLabels, static_cast<uint64_t>(c)));
    ch.labels.resize(static_cast<size_t>(ch.steps * B_));
    for (auto& l : ch.labels)
      l = std::min<int64_t>(K_ - 1, std::upper_bound(class_cdf_.begin(), class_cdf_.end(), lrng.uniform()) -
                                        class_cdf_.begin());
  }
  const uint64_t pairs_key = stream_key(ctx_.seed, Stream::TrainPairs, static_cast<uint64_t>(c));
  ch.target = coupling_.sample(ch.x0, ch.labels, pairs_key, pairs_ctx_).target;
}

void Trainer::draw_times_and_classes(int64_t k, std::span<const int64_t> labels) {
  std::vector<float>& tv = batch_.tv;
  std::vector<float>& rv = batch_.rv;
  Rng trng(stream_key(ctx_.seed, Stream::TrainTime, static_cast<uint64_t>(k)));
  for (int64_t i = 0; i < B_; ++i) {
    tv[i] = static_cast<float>(draw_time(opt_, trng));
    if (mf_) {  // MeanFlow: (t, r) = the ordered pair of two draws, r = t for a share 1 - mf_ratio
      const double other = draw_time(opt_, trng);
      const bool apart = trng.uniform() < opt_.mf_ratio;
      const float lo = std::min(tv[i], static_cast<float>(other)), hi = std::max(tv[i], static_cast<float>(other));
      tv[i] = apart ? lo : tv[i];
      rv[i] = apart ? hi : tv[i];
    }
  }
  if (K_ > 0) {  // classifier-free guidance: the null class K with probability label_dropout
    Rng drng(stream_key(ctx_.seed, Stream::TrainDropout, static_cast<uint64_t>(k)));
    for (int64_t i = 0; i < B_; ++i) batch_.yv[i] = drng.uniform() < opt_.label_dropout ? K_ : labels[i];
  }
}

double Trainer::draw_batch(int64_t k) {
  if (!chunk_.holds(k)) draw_chunk(k);
  const int64_t off = (k - chunk_.first) * B_;
  const PointsView x0{chunk_.x0.data.data() + off * d_, B_, d_};
  const std::span<const int64_t> target(chunk_.target.data() + off, static_cast<size_t>(B_));
  const std::span<const int64_t> labels =
      K_ > 0 ? std::span<const int64_t>(chunk_.labels.data() + off, static_cast<size_t>(B_))
             : std::span<const int64_t>();
  draw_times_and_classes(k, labels);
  if (on_pairs_) on_pairs_(k, x0, target, labels);
  double cost = 0;
  for (int64_t i = 0; i < B_; ++i) {
    const float* a = x0.row(i);
    const float* y = data_.x.row(target[i]);
    const float ti = batch_.tv[i];
    for (int64_t c = 0; c < d_; ++c) {
      const float diff = y[c] - a[c];
      batch_.xt[i * d_ + c] = (1.0f - ti) * a[c] + ti * y[c];
      batch_.u[i * d_ + c] = diff;
      cost += 0.5 * static_cast<double>(diff) * diff;
    }
  }
  return cost;
}

double Trainer::loss_and_gradient() {
  const Batch& b = batch_;
  s_.g.zero_();
  const at::Tensor xt = mine(b.xt_t), t = mine(b.t_t), r = mine(b.r_t), y = mine(b.y_t), u = mine(b.u_t);
  if (mf_) {
    // u and du/dt along (v, 1, 0) in one dual-number pass; u_tgt = v - (t - r) du/dt, stop-gradient.
    auto [uo, dudt] = s_.net.forward_jvp(xt, t, r, y, u, mine(b.ones_t), mine(b.zeros_t));
    const at::Tensor target_u = u + (r - t).unsqueeze(1) * dudt;
    const at::Tensor per_sample = (uo - target_u).pow(2).sum(1);  // MeanFlow's |u - u_tgt|^2
    const at::Tensor w =
        opt_.mf_power > 0 ? (per_sample.detach() + opt_.mf_c).pow(-opt_.mf_power) : at::ones_like(per_sample);
    batch_mean(w * per_sample).backward();
    return combine(batch_mean(per_sample.detach()).item<double>());
  }
  at::Tensor v;
  if (res_.precision == Precision::Bf16) {
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    v = s_.net.forward(xt, t, {}, y);
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
  } else {
    v = s_.net.forward(xt, t, {}, y);
  }
  const at::Tensor loss_t = batch_mean((v.to(at::kFloat) - u).pow(2).sum(1));  // |v - (x1 - x0)|^2
  loss_t.backward();
  return combine(loss_t.item<double>());
}

void Trainer::update(int64_t k, double lr) {
  at::NoGradGuard no_grad;
  at::Tensor grad = s_.g;
  if (opt_.grad_clip > 0) {
    const double norm = s_.g.norm().item<double>();
    if (norm > opt_.grad_clip) grad = s_.g * (opt_.grad_clip / (norm + 1e-6));
  }
  const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(k + 1));
  const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(k + 1));
  // EMA with warm-up (the decay grows as (1 + k) / (10 + k) up to ema_decay), so short runs are
  // not dominated by the initial weights.
  const double ema = std::min(opt_.ema_decay, static_cast<double>(1 + k) / static_cast<double>(10 + k));
  if (opt_.optimizer == OptimizerKind::AdamW && opt_.weight_decay > 0) s_.w.mul_(1.0 - lr * opt_.weight_decay);
  s_.m.mul_(opt_.beta1).add_(grad, 1.0 - opt_.beta1);
  s_.v.mul_(opt_.beta2).addcmul_(grad, grad, 1.0 - opt_.beta2);
  s_.w.addcdiv_(s_.m, s_.v.sqrt().div_(std::sqrt(bc2)).add_(opt_.adam_eps), -lr / bc1);
  s_.ema.mul_(ema).add_(s_.w, 1.0 - ema);
}

// The EMA weights as the run's model, with the caller's meta and the run's steps, coupling and precision.
void save_model(const State& s, const nlohmann::json& meta, const std::string& coupling, Precision precision,
                const std::string& path) {
  Net ema_net = s.net;
  ema_net.params = detail::clone_all(s.ema_of);
  nlohmann::json m = meta.is_object() ? meta : nlohmann::json::object();
  m["steps"] = s.step;
  m["coupling"] = coupling;
  m["precision"] = to_string(precision);
  detail::make_model(std::move(ema_net), std::move(m)).save(path);
}

}  // namespace

TrainOptions checkpoint_options(const std::string& path, std::string_view argument) {
  torch::serialize::InputArchive ar;
  const auto meta = read_checkpoint_meta(ar, path, argument);
  return TrainOptions::from_json(meta.at("options"));
}

TrainResult train_flow(const TrainOptions& opt_in, const CouplingData& data, const Coupling& coupling,
                       const RunFiles& files, bool resume, const nlohmann::json& meta, const Context& ctx,
                       const TrainObserver& observe, const PairsObserver& on_pairs) {
  const TrainOptions opt = opt_in;
  check_inputs(opt, data, files, ctx);
  TrainResult res;
  res.precision = opt.precision;
  if (opt.precision == Precision::Bf16 && !cpu_has_bf16()) {
    res.precision = Precision::Fp32;
    res.precision_note = "bf16 needs AVX512-BF16 or AMX-BF16, which this CPU lacks: training in fp32";
  }
  detail::use_threads(ctx);
  const uint64_t data_hash = fingerprint(data);

  State s;
  s.net = Net::create(opt.model, stream_key(ctx.seed, Stream::ModelInit));
  s.flatten();
  if (resume) res.resumed_from = resume_state(s, opt, coupling, files, data_hash);
  s.attach_grads();
  res.parameters = s.net.numel();

  Trainer trainer(opt, data, coupling, files, ctx, on_pairs, data_hash, s, res);
  trainer.run(observe);
  res.steps = s.step;
  const int64_t run_steps = s.step - res.resumed_from;
  res.steps_per_second = res.seconds > 0 ? static_cast<double>(run_steps) / res.seconds : 0.0;
  res.history = s.history;
  if (res.termination == Termination::NumericalFailure) return res;
  res.message = (res.stopped ? "stopped after " : "trained ") + std::to_string(s.step) + " steps";
  trainer.checkpoint(s.step);
  if (ctx.communicator().rank() == 0) save_model(s, meta, coupling.name(), res.precision, files.model());
  return res;
}

}  // namespace otgen::flow
