// FlowModel (otgen/flow.h): a trained velocity field, its TorchScript export and ODE sampling.
#include <cpuid.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include "flow/net.h"
#include "otgen/error.h"

namespace otgen::flow {

bool cpu_has_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u;
  bool avx512_bf16 = false;
  if (a >= 1) {
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    avx512_bf16 = ((a1 >> 5) & 1u) && __builtin_cpu_supports("avx512f");
  }
  return amx_bf16 || avx512_bf16;
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
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    write(tmp);
    std::filesystem::rename(tmp, path);
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw Error("cannot write " + path + ": " + e.what());
  }
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

void FlowModel::velocity(double t, PointsView x, std::span<float> out, const Context& ctx) const {
  require(x.d == dim(), "x", "dimension " + std::to_string(x.d), "the model's dimension " + std::to_string(dim()));
  require(static_cast<int64_t>(out.size()) == x.n * x.d, "out", "size " + std::to_string(out.size()),
          "n * dim = " + std::to_string(x.n * x.d));
  if (x.n == 0) return;
  detail::use_threads(ctx);
  c10::InferenceMode guard;
  const at::Tensor xt = at::from_blob(const_cast<float*>(x.data), {x.n, x.d}, at::kFloat);
  const at::Tensor tt = at::full({x.n}, static_cast<float>(t), at::kFloat);
  const at::Tensor v = impl_->net.forward(xt, tt).contiguous();
  std::copy_n(v.data_ptr<float>(), out.size(), out.begin());
}

OdeResult FlowModel::sample(Points& x, const OdeOptions& ode, const Context& ctx, const OdeObserver& observe) const {
  require(x.d == dim(), "x", "dimension " + std::to_string(x.d), "the model's dimension " + std::to_string(dim()));
  const int64_t n = x.n, d = x.d;
  return integrate_ode(
      [&](double t, std::span<const float> state, std::span<float> out) {
        velocity(t, PointsView{state.data(), n, d}, out, ctx);
      },
      std::span<float>(x.data), ode, observe);
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
  meta["input"] = "x: float32 (B, dim) flattened, t: float32 (B,)";
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
