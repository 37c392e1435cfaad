// Flow-matching trainer (otgen/flow.h): pairs from a Coupling, Adam/AdamW with warm-up and cosine
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
#include "otgen/error.h"
#include "otgen/rng.h"
#include "otgen/semidiscrete.h"
#include "otgen/streams.h"

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

}  // namespace

TrainOptions checkpoint_options(const std::string& path, std::string_view argument) {
  torch::serialize::InputArchive ar;
  const auto meta = read_checkpoint_meta(ar, path, argument);
  return TrainOptions::from_json(meta.at("options"));
}

TrainResult train_flow(const TrainOptions& opt_in, const CouplingData& data, const Coupling& coupling,
                       const RunFiles& files, bool resume, const nlohmann::json& meta, const Context& ctx,
                       const TrainObserver& observe, const PairsObserver& on_pairs) {
  TrainOptions opt = opt_in;
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
  if (resume) {
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
    res.resumed_from = s.step;
  }
  s.attach_grads();
  res.parameters = s.net.numel();

  const int64_t B = opt.batch, d = data.x.d;
  const bool mf = opt.model.meanflow;
  std::vector<float> xt(static_cast<size_t>(B * d)), u(static_cast<size_t>(B * d)), tv(static_cast<size_t>(B)),
      rv(static_cast<size_t>(B));
  std::vector<int64_t> yv(static_cast<size_t>(B));
  const at::Tensor xt_t = at::from_blob(xt.data(), {B, d}, at::kFloat);
  const at::Tensor u_t = at::from_blob(u.data(), {B, d}, at::kFloat);
  const at::Tensor t_t = at::from_blob(tv.data(), {B}, at::kFloat);
  const at::Tensor r_t = mf ? at::from_blob(rv.data(), {B}, at::kFloat) : at::Tensor();
  const at::Tensor y_t = K > 0 ? at::from_blob(yv.data(), {B}, at::kLong) : at::Tensor();
  const at::Tensor ones_t = at::ones({B}, at::kFloat), zeros_t = at::zeros({B}, at::kFloat);
  // Conditional: the noise classes' cumulative distribution (the coupling's class weights).
  std::vector<double> class_cdf;
  if (K > 0) {
    const std::vector<double> w = coupling.class_weights();
    require(static_cast<int64_t>(w.size()) == K, "class weights", w.size(), "one per class");
    double acc = 0;
    for (const double p : w) class_cdf.push_back(acc += p);
    for (double& c : class_cdf) c /= acc;
  }
  // A time from the training distribution.
  auto draw_time = [&opt](Rng& rng) {
    return opt.time == TimeSampling::Uniform ? rng.uniform()
                                             : 1.0 / (1.0 + std::exp(-(opt.logit_mean + opt.logit_std * rng.normal())));
  };

  // Steps whose pairs one coupling call draws (aligned to multiples of `chunk` from step 0, so a
  // resumed run redraws exactly the same chunk).
  const int64_t chunk = coupling.rows_independent() ? std::max<int64_t>(1, std::min<int64_t>(16, 4096 / B)) : 1;
  int64_t chunk_first = 0, chunk_steps = 0;
  Points chunk_x0;
  std::vector<int64_t> chunk_target, chunk_labels;

  const auto t_start = Clock::now();
  double loss_acc = 0, cost_acc = 0;
  int64_t acc_n = 0;
  res.termination = Termination::MaxSteps;
  auto checkpoint = [&](int64_t step) {
    save_checkpoint(files.checkpoint(), s, step, s.elapsed + seconds_since(t_start), opt, coupling.name(), data_hash);
  };

  for (; s.step < opt.steps; ++s.step) {
    const int64_t k = s.step;
    // Pairs: noise and times of step k from their own streams of (seed, k); the coupling's draws for
    // a chunk of `chunk` steps at once where its rows are independent (one larger engine call).
    const auto t_pairs = Clock::now();
    if (k < chunk_first || k >= chunk_first + chunk_steps) {
      const int64_t c = k / chunk;
      chunk_first = c * chunk;
      chunk_steps = std::min(chunk, opt.steps - chunk_first);
      // The chunk's noise: LibTorch's vectorised normal sampler on a generator seeded from (seed, chunk)
      // (deterministic; 5-10x faster than per-row Philox Box-Muller, a visible share of a small MLP step).
      chunk_x0 = Points(chunk_steps * B, d);
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(stream_key(ctx.seed, Stream::TrainNoise, static_cast<uint64_t>(c)));
      at::from_blob(chunk_x0.data.data(), {chunk_steps * B, d}, at::kFloat).normal_(0.0, 1.0, gen);
      chunk_labels.clear();
      if (K > 0) {  // the noise classes, drawn from the class weights
        Rng lrng(stream_key(ctx.seed, Stream::TrainLabels, static_cast<uint64_t>(c)));
        chunk_labels.resize(static_cast<size_t>(chunk_steps * B));
        for (auto& l : chunk_labels)
          l = std::min<int64_t>(K - 1, std::upper_bound(class_cdf.begin(), class_cdf.end(), lrng.uniform()) - class_cdf.begin());
      }
      chunk_target = coupling.sample(chunk_x0, chunk_labels, stream_key(ctx.seed, Stream::TrainPairs, static_cast<uint64_t>(c)), ctx).target;
    }
    const PointsView x0{chunk_x0.data.data() + (k - chunk_first) * B * d, B, d};
    const std::span<const int64_t> target(chunk_target.data() + (k - chunk_first) * B, static_cast<size_t>(B));
    const std::span<const int64_t> labels =
        K > 0 ? std::span<const int64_t>(chunk_labels.data() + (k - chunk_first) * B, static_cast<size_t>(B))
              : std::span<const int64_t>();
    Rng trng(stream_key(ctx.seed, Stream::TrainTime, static_cast<uint64_t>(k)));
    for (int64_t i = 0; i < B; ++i) {
      tv[i] = static_cast<float>(draw_time(trng));
      if (mf) {  // MeanFlow: (t, r) = the ordered pair of two draws, r = t for a share 1 - mf_ratio
        const double other = draw_time(trng);
        const bool apart = trng.uniform() < opt.mf_ratio;
        const float lo = std::min(tv[i], static_cast<float>(other)), hi = std::max(tv[i], static_cast<float>(other));
        tv[i] = apart ? lo : tv[i];
        rv[i] = apart ? hi : tv[i];
      }
    }
    if (K > 0) {  // classifier-free guidance: the null class K with probability label_dropout
      Rng drng(stream_key(ctx.seed, Stream::TrainDropout, static_cast<uint64_t>(k)));
      for (int64_t i = 0; i < B; ++i) yv[i] = drng.uniform() < opt.label_dropout ? K : labels[i];
    }
    if (on_pairs) on_pairs(k, x0, target, labels);
    double cost = 0;
    for (int64_t i = 0; i < B; ++i) {
      const float* a = x0.row(i);
      const float* y = data.x.row(target[i]);
      const float ti = tv[i];
      for (int64_t c = 0; c < d; ++c) {
        const float diff = y[c] - a[c];
        xt[i * d + c] = (1.0f - ti) * a[c] + ti * y[c];
        u[i * d + c] = diff;
        cost += 0.5 * static_cast<double>(diff) * diff;
      }
    }
    res.coupling_seconds += seconds_since(t_pairs);

    // Loss, gradient, clipping.
    at::Tensor per_sample;  // |v - (x1 - x0)|^2, or MeanFlow's |u - u_tgt|^2
    double loss = 0;
    s.g.zero_();
    if (mf) {
      // u and du/dt along (v, 1, 0) in one dual-number pass; u_tgt = v - (t - r) du/dt, stop-gradient.
      auto [uo, dudt] = s.net.forward_jvp(xt_t, t_t, r_t, y_t, u_t, ones_t, zeros_t);
      const at::Tensor target_u = u_t + (r_t - t_t).unsqueeze(1) * dudt;
      per_sample = (uo - target_u).pow(2).sum(1);
      const at::Tensor w = opt.mf_power > 0 ? (per_sample.detach() + opt.mf_c).pow(-opt.mf_power) : at::ones_like(per_sample);
      (w * per_sample).mean().backward();
      loss = per_sample.detach().mean().item<double>();
    } else {
      at::Tensor v;
      if (res.precision == Precision::Bf16) {
        at::autocast::set_cpu_enabled(true);
        at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
        v = s.net.forward(xt_t, t_t, {}, y_t);
        at::autocast::set_cpu_enabled(false);
        at::autocast::clear_cache();
      } else {
        v = s.net.forward(xt_t, t_t, {}, y_t);
      }
      const at::Tensor loss_t = (v.to(at::kFloat) - u_t).pow(2).sum(1).mean();
      loss_t.backward();
      loss = loss_t.item<double>();
    }
    if (!std::isfinite(loss)) {
      res.termination = Termination::NumericalFailure;
      res.message = "the loss became " + to_text(loss) + " at step " + std::to_string(k) +
                    ": lower --lr or set --grad-clip; the last checkpoint is kept";
      break;
    }
    const double lr = learning_rate(opt, k);
    {
      at::NoGradGuard no_grad;
      at::Tensor grad = s.g;
      if (opt.grad_clip > 0) {
        const double norm = s.g.norm().item<double>();
        if (norm > opt.grad_clip) grad = s.g * (opt.grad_clip / (norm + 1e-6));
      }
      const double bc1 = 1.0 - std::pow(opt.beta1, static_cast<double>(k + 1));
      const double bc2 = 1.0 - std::pow(opt.beta2, static_cast<double>(k + 1));
      // EMA with warm-up (the decay grows as (1 + k) / (10 + k) up to ema_decay), so short runs are
      // not dominated by the initial weights.
      const double ema = std::min(opt.ema_decay, static_cast<double>(1 + k) / static_cast<double>(10 + k));
      if (opt.optimizer == OptimizerKind::AdamW && opt.weight_decay > 0) s.w.mul_(1.0 - lr * opt.weight_decay);
      s.m.mul_(opt.beta1).add_(grad, 1.0 - opt.beta1);
      s.v.mul_(opt.beta2).addcmul_(grad, grad, 1.0 - opt.beta2);
      s.w.addcdiv_(s.m, s.v.sqrt().div_(std::sqrt(bc2)).add_(opt.adam_eps), -lr / bc1);
      s.ema.mul_(ema).add_(s.w, 1.0 - ema);
    }

    loss_acc += loss;
    cost_acc += cost / static_cast<double>(B);
    ++acc_n;
    const int64_t done = k + 1;
    if (done % opt.log_every == 0 || done == opt.steps) {
      s.history.push_back({done, loss_acc / acc_n, cost_acc / acc_n, lr, s.elapsed + seconds_since(t_start)});
      loss_acc = cost_acc = 0;
      acc_n = 0;
    }
    if (observe && !observe(done, loss)) {
      s.step = done;
      res.stopped = done < opt.steps;
      break;
    }
    if (opt.checkpoint_every > 0 && done % opt.checkpoint_every == 0 && done < opt.steps) {
      checkpoint(done);
    }
  }

  res.seconds = seconds_since(t_start);
  res.steps = s.step;
  const int64_t run_steps = s.step - res.resumed_from;
  res.steps_per_second = res.seconds > 0 ? static_cast<double>(run_steps) / res.seconds : 0.0;
  res.history = s.history;
  if (res.termination == Termination::NumericalFailure) return res;
  res.message = (res.stopped ? "stopped after " : "trained ") + std::to_string(s.step) + " steps";
  checkpoint(s.step);

  Net ema_net = s.net;
  ema_net.params = detail::clone_all(s.ema_of);
  nlohmann::json m = meta.is_object() ? meta : nlohmann::json::object();
  m["steps"] = s.step;
  m["coupling"] = coupling.name();
  m["precision"] = to_string(res.precision);
  detail::make_model(std::move(ema_net), std::move(m)).save(files.model());
  return res;
}

}  // namespace otgen::flow
