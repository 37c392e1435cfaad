// FlowModel (otgen/flow/flow.h): a trained velocity field, its TorchScript export and ODE sampling.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include "flow/net.h"
#include "otgen/core/cpu_features.h"
#include "otgen/core/error.h"
#include "otgen/core/staging.h"

namespace otgen::flow {

// AMX-BF16 or AVX512-BF16, from the shared probe (otgen/core/cpu_features.h: cpuid, the OS state, AMX permission).
bool cpu_has_bf16() {
  const CpuFeatures& f = cpu_features();
  return f.amx_bf16 || f.avx512_bf16;
}

struct FlowModel::Impl {
  detail::Net net;
  nlohmann::json meta = nlohmann::json::object();
};

namespace detail {

void use_threads(const Context& ctx) {
  const int n = ctx.resolved_threads();
  if (at::get_num_threads() != n) at::set_num_threads(n);
}

void atomic_save(const std::string& path, const std::function<void(const std::string& tmp)>& write) {
  const std::string tmp = temporary_path(path);
  register_temporary(tmp);
  try {
    write(tmp);
  } catch (const std::exception& e) {
    discard_temporary(tmp);
    throw Error("cannot write " + path + ": " + e.what());
  }
  publish(tmp, path);
}

FlowModel make_model(Net net, nlohmann::json meta) {
  auto impl = std::make_shared<FlowModel::Impl>();
  for (auto& p : net.params) p = p.detach().requires_grad_(false);
  impl->net = std::move(net);
  impl->meta = std::move(meta);
  return FlowModel(impl);
}

}  // namespace detail

FlowModel FlowModel::init(const ModelSpec& spec, uint64_t seed) {
  return detail::make_model(detail::Net::create(spec, seed), nlohmann::json::object());
}

const ModelSpec& FlowModel::spec() const { return impl_->net.spec; }
int64_t FlowModel::parameters() const { return impl_->net.numel(); }
const nlohmann::json& FlowModel::metadata() const { return impl_->meta; }
void FlowModel::set_metadata(nlohmann::json meta) { impl_->meta = std::move(meta); }

bool FlowCondition::two_passes(const FlowModel& m) const {
  return m.num_classes() > 0 && !labels.empty() && guidance != 0.0 && guidance != 1.0;
}

void FlowCondition::validate(const FlowModel& m, int64_t n) const {
  require(std::isfinite(guidance), "--guidance", guidance, "a finite number");
  if (labels.empty()) return;
  require(m.num_classes() > 0, "--class", "given", "a conditional model (this one was trained without classes)");
  require(static_cast<int64_t>(labels.size()) == n, "--class", std::to_string(labels.size()) + " labels",
          "one per row (" + std::to_string(n) + ")");
  for (const int64_t l : labels)
    require(l >= 0 && l < m.num_classes(), "--class", l, "a class in [0, " + std::to_string(m.num_classes()) + ")");
}

namespace {

// The network on a batch at times t (and r for MeanFlow models) under a condition: unconditional
// models as they are; conditional ones at the null class without labels, else v_K + w (v_y - v_K)
// (one pass at w = 1 or w = 0, both classes in one batch of 2n rows otherwise).
void evaluate(const detail::Net& net, double t, double r, PointsView x, std::span<float> out, const Context& ctx,
              const FlowModel::Condition& c) {
  if (x.n == 0) return;
  detail::use_threads(ctx);
  c10::InferenceMode guard;
  const ModelSpec& s = net.spec;
  const int64_t n = x.n, K = s.num_classes;
  at::Tensor xt = at::from_blob(const_cast<float*>(x.data), {n, x.d}, at::kFloat);
  at::Tensor y;
  const bool both = K > 0 && !c.labels.empty() && c.guidance != 0.0 && c.guidance != 1.0;  // two_passes
  if (K > 0) {
    if (c.labels.empty() || c.guidance == 0.0) {
      y = at::full({n}, K, at::kLong);
    } else {
      y = at::from_blob(const_cast<int64_t*>(c.labels.data()), {n}, at::kLong);
      if (both) {
        y = at::cat({y, at::full({n}, K, at::kLong)});
        xt = at::cat({xt, xt});
      }
    }
  }
  const int64_t rows = xt.size(0);
  const at::Tensor tt = at::full({rows}, static_cast<float>(t), at::kFloat);
  const at::Tensor rt = s.meanflow ? at::full({rows}, static_cast<float>(r), at::kFloat) : at::Tensor();
  at::Tensor v = net.forward(xt, tt, rt, y);
  if (both) {
    const at::Tensor vc = v.narrow(0, 0, n), vu = v.narrow(0, n, n);
    v = vu + (vc - vu) * c.guidance;
  }
  v = v.contiguous();
  std::copy_n(v.data_ptr<float>(), out.size(), out.begin());
}

void check_batch(const FlowModel& m, PointsView x, std::span<float> out, const FlowModel::Condition& c) {
  require(x.d == m.dim(), "x", "dimension " + std::to_string(x.d), "the model's dimension " + std::to_string(m.dim()));
  require(static_cast<int64_t>(out.size()) == x.n * x.d, "out", "size " + std::to_string(out.size()),
          "n * dim = " + std::to_string(x.n * x.d));
  c.validate(m, x.n);
}

}  // namespace

void FlowModel::velocity(double t, PointsView x, std::span<float> out, const Context& ctx, const Condition& c) const {
  check_batch(*this, x, out, c);
  evaluate(impl_->net, t, t, x, out, ctx, c);
}

void FlowModel::mean_velocity(double t, double r, PointsView x, std::span<float> out, const Context& ctx,
                              const Condition& c) const {
  require(meanflow(), "--model", "a flow model", "a MeanFlow model (trained with --meanflow)");
  require(std::isfinite(t) && std::isfinite(r) && r >= t, "r", r, "a destination time >= t = " + to_text(t));
  check_batch(*this, x, out, c);
  evaluate(impl_->net, t, r, x, out, ctx, c);
}

OdeResult FlowModel::sample(Points& x, const OdeOptions& ode, const Context& ctx, const OdeObserver& observe,
                            const Condition& c) const {
  require(x.d == dim(), "x", "dimension " + std::to_string(x.d), "the model's dimension " + std::to_string(dim()));
  c.validate(*this, x.n);
  const int64_t n = x.n, d = x.d;
  const int64_t passes = c.two_passes(*this) ? 2 : 1;
  if (meanflow() && ode.method == OdeMethod::Euler) {
    // MeanFlow jumps: x += h u(x, t, t + h).
    ode.validate();
    OdeResult res;
    std::vector<float> u(x.data.size());
    auto time = [&](int64_t k) {
      return k == ode.steps ? ode.t1 : ode.t0 + (ode.t1 - ode.t0) * static_cast<double>(k) / static_cast<double>(ode.steps);
    };
    res.t = ode.t0;
    if (observe) observe(ode.t0, x.data);
    for (int64_t k = 0; k < ode.steps; ++k) {
      const double t = time(k), r = time(k + 1);
      evaluate(impl_->net, t, r, x.view(), u, ctx, c);
      for (size_t i = 0; i < u.size(); ++i) x.data[i] += static_cast<float>((r - t) * u[i]);
      ++res.nfe;
      if (!std::all_of(x.data.begin(), x.data.end(), [](float v) { return std::isfinite(v); })) {
        res.termination = Termination::NumericalFailure;
        res.message = "the state became non-finite at step " + std::to_string(k + 1);
        return res;
      }
      res.t = r;
      if (observe) observe(r, x.data);
    }
    res.nfe *= passes;
    res.accepted = ode.steps;
    return res;
  }
  OdeResult res = integrate_ode(
      [&](double t, std::span<const float> state, std::span<float> out) {
        evaluate(impl_->net, t, t, PointsView{state.data(), n, d}, out, ctx, c);
      },
      std::span<float>(x.data), ode, observe);
  res.nfe *= passes;
  return res;
}

namespace {

// div_x v at (t, x) for each row, by forward-mode AD: each particle is repeated once per coordinate j
// with tangent e_j, so one batched JVP gives the whole Jacobian diagonal.
void divergence(const detail::Net& net, double t, PointsView x, int64_t y, std::vector<double>& div) {
  at::NoGradGuard no_grad;
  const int64_t n = x.n, d = x.d;
  div.assign(static_cast<size_t>(n), 0.0);
  const int64_t chunk = std::max<int64_t>(1, 65536 / d);  // particles per pass (<= 65536 rows)
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    const int64_t m = std::min(chunk, n - i0);
    const at::Tensor xb = at::from_blob(const_cast<float*>(x.row(i0)), {m, d}, at::kFloat).repeat({d, 1});
    const at::Tensor dx = at::eye(d, at::kFloat).repeat_interleave(m, 0);  // row j * m + i: e_j
    const at::Tensor tt = at::full({d * m}, static_cast<float>(t), at::kFloat), zero = at::zeros({d * m}, at::kFloat);
    const at::Tensor r = net.spec.meanflow ? tt : at::Tensor(), dr = net.spec.meanflow ? zero : at::Tensor();
    const at::Tensor yt = net.spec.num_classes > 0 ? at::full({d * m}, y, at::kLong) : at::Tensor();
    const at::Tensor tan = net.forward_jvp(xb, tt, r, yt, dx, zero, dr).second.view({d, m, d});
    const at::Tensor tr = at::diagonal(tan, 0, 0, 2).sum(1).to(at::kDouble).contiguous();  // (m,)
    std::copy_n(tr.data_ptr<double>(), m, div.begin() + i0);
  }
}

}  // namespace

FlowFieldFn FlowModel::field(int64_t label, const Context& ctx) const {
  const int64_t K = num_classes();
  if (label >= 0) {
    require(K > 0, "--class", label, "a conditional model (this one was trained without classes)");
    require(label < K, "--class", label, "a class in [0, " + std::to_string(K) + ")");
  }
  return [impl = impl_, label, K, ctx](double t, PointsView x, const FlowFieldRequest& req, FlowFieldValues& out) -> int64_t {
    const detail::Net& net = impl->net;
    const size_t nd = static_cast<size_t>(x.n * x.d);
    const std::vector<int64_t> labels(label >= 0 ? static_cast<size_t>(x.n) : 0, label);
    int64_t nfe = 0;
    if (req.guidance) {
      require(label >= 0, "--guidance", "given", "--class K (a conditional model's class)");
      out.v_cond.resize(nd);
      out.v_null.resize(nd);
      evaluate(net, t, t, x, out.v_cond, ctx, FlowCondition{labels, 1.0});
      evaluate(net, t, t, x, out.v_null, ctx, FlowCondition{});
      nfe += 2;
    } else {
      out.v.resize(nd);
      evaluate(net, t, t, x, out.v, ctx, FlowCondition{labels, 1.0});
      nfe += 1;
    }
    if (req.divergence) {
      detail::use_threads(ctx);
      divergence(net, t, x, label >= 0 ? label : K, out.div);
      nfe += x.d;  // one JVP per coordinate (each about the cost of an evaluation)
    }
    return nfe;
  };
}

std::vector<double> FlowModel::evaluate_f64(std::span<const double> x, std::span<const double> t,
                                            std::span<const double> r, std::span<const int64_t> y,
                                            std::span<const double> dx, std::span<const double> dt,
                                            std::span<const double> dr, std::vector<double>* tangent) const {
  const int64_t n = static_cast<int64_t>(t.size()), d = dim();
  require(static_cast<int64_t>(x.size()) == n * d, "x", x.size(), "n * dim values");
  require(meanflow() ? r.size() == t.size() : r.empty(), "r", r.size(), "one per row for MeanFlow models, else none");
  require(num_classes() > 0 ? y.size() == t.size() : y.empty(), "y", y.size(), "one per row for conditional models, else none");
  detail::Net net = impl_->net;
  for (auto& p : net.params) p = p.to(at::kDouble);
  net.freqs = net.freqs.to(at::kDouble);
  auto vec = [](std::span<const double> v, std::vector<int64_t> shape) {
    return at::from_blob(const_cast<double*>(v.data()), shape, at::kDouble).clone();
  };
  const at::Tensor xt = vec(x, {n, d}), tt = vec(t, {n});
  const at::Tensor rt = meanflow() ? vec(r, {n}) : at::Tensor();
  const at::Tensor yt = num_classes() > 0 ? at::from_blob(const_cast<int64_t*>(y.data()), {n}, at::kLong).clone() : at::Tensor();
  at::Tensor out;
  if (tangent) {
    require(dx.size() == x.size() && dt.size() == t.size() && dr.size() == r.size(), "tangent", dx.size(),
            "dx, dt, dr shaped like x, t, r");
    auto [o, tan] = net.forward_jvp(xt, tt, rt, yt, vec(dx, {n, d}), vec(dt, {n}),
                                    meanflow() ? vec(dr, {n}) : at::Tensor());
    out = o.detach().contiguous();
    tan = tan.contiguous();
    tangent->assign(tan.data_ptr<double>(), tan.data_ptr<double>() + tan.numel());
  } else {
    at::NoGradGuard no_grad;
    out = net.forward(xt, tt, rt, yt).contiguous();
  }
  return {out.data_ptr<double>(), out.data_ptr<double>() + out.numel()};
}

void FlowModel::save(const std::string& path) const {
  const detail::Net& net = impl_->net;
  torch::jit::Module m("otgen.FlowModel");
  for (size_t p = 0; p < net.params.size(); ++p) m.register_parameter(net.names[p], net.params[p].detach(), false);
  m.register_buffer("freqs", net.freqs);
  m.define(net.script());
  nlohmann::json meta = impl_->meta;
  meta["format"] = "otgen.flow/1";
  meta["model"] = net.spec.to_json();
  meta["parameters"] = net.numel();
  meta["time_convention"] = "t = 0 noise N(0, I), t = 1 data; dx/dt = forward(x, t)";
  meta["input"] = std::string("x: float32 (B, dim) flattened, t: float32 (B,)") +
                  (net.spec.meanflow ? ", r: float32 (B,) the destination time (>= t)" : "") +
                  (net.spec.num_classes > 0 ? ", y: int64 (B,) class in [0, K], K = null (unconditional)" : "");
  meta["output"] = net.spec.meanflow ? "the average velocity u(x, t, r) over [t, r]: x_r = x + (r - t) u"
                                     : "the velocity v(t, x)";
  torch::jit::ExtraFilesMap extra{{"otgen.json", meta.dump(2)}};
  detail::atomic_save(path, [&](const std::string& tmp) { m.save(tmp, extra); });
}

FlowModel FlowModel::load(const std::string& path, std::string_view argument) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail_argument(argument, "'" + path + "'", "an existing model.pt file (written by otgen train)");
  torch::jit::ExtraFilesMap extra{{"otgen.json", ""}};
  torch::jit::Module m;
  try {
    m = torch::jit::load(path, c10::nullopt, extra);
  } catch (const std::exception& e) {
    fail_argument(argument, "'" + path + "'", "a TorchScript model.pt written by otgen train (it could not be read)");
  }
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(extra["otgen.json"]);
  } catch (const std::exception&) {
    fail_argument(argument, "'" + path + "'", "an otgen model.pt (its otgen.json metadata is missing or malformed)");
  }
  if (!meta.is_object() || meta.value("format", "") != "otgen.flow/1" || !meta.contains("model"))
    fail_argument(argument, "'" + path + "'", "an otgen model.pt (format otgen.flow/1)");
  detail::Net net;
  net.spec = ModelSpec::from_json(meta["model"]);
  for (const auto& [name, shape] : detail::Net::layout(net.spec)) {
    if (!m.hasattr(name)) fail_argument(argument, "'" + path + "'", "a model with parameter " + name);
    at::Tensor w = m.attr(name).toTensor().detach().to(at::kFloat).contiguous();
    if (w.sizes().vec() != shape) fail_argument(argument, "'" + path + "'", "parameter " + name + " of the spec's shape");
    if (!at::isfinite(w).all().item<bool>()) fail_argument(argument, "'" + path + "'", "finite weights (" + name + ")");
    net.names.push_back(name);
    net.params.push_back(w);
  }
  net.freqs = detail::frequencies(net.spec);
  meta.erase("format");
  return detail::make_model(std::move(net), std::move(meta));
}

}  // namespace otgen::flow
