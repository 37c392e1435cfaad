// The feature network for Frechet distances (otgen/flow/features.h). The architecture is written once, as
// the TorchScript source of the exported module; training runs that same module (TorchScript methods
// are differentiable), so what is trained is what is saved.
#include "otgen/flow/features.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <sstream>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include "flow/net.h"
#include "otgen/core/error.h"
#include "otgen/core/rng.h"

namespace otgen::features {
namespace {

constexpr const char* kFormat = "otgen.features/1";

struct Arch {
  int64_t dim = 0, side = 0, channels = 0, classes = 0;
  FeatureOptions opt;
  // (name, shape, fan_in) of every parameter, in order.
  std::vector<std::tuple<std::string, std::vector<int64_t>, int64_t>> params() const {
    const int64_t w = opt.width, f = opt.feature_dim;
    if (side > 0) {
      const int64_t s4 = side / 2 / 2, flat = 2 * w * s4 * s4;
      return {{"c1_w", {w, channels, 3, 3}, channels * 9}, {"c1_b", {w}, channels * 9},
              {"c2_w", {2 * w, w, 3, 3}, w * 9},           {"c2_b", {2 * w}, w * 9},
              {"f_w", {f, flat}, flat},                    {"f_b", {f}, flat},
              {"o_w", {classes, f}, f},                    {"o_b", {classes}, f}};
    }
    const int64_t h = 8 * w;
    return {{"h_w", {h, dim}, dim}, {"h_b", {h}, dim},   {"f_w", {f, h}, h},
            {"f_b", {f}, h},        {"o_w", {classes, f}, f}, {"o_b", {classes}, f}};
  }
  std::string script() const {
    std::ostringstream s;
    s << "def features(self, x: Tensor) -> Tensor:\n";
    if (side > 0) {
      s << "    h = x.reshape([x.size(0), " << channels << ", " << side << ", " << side << "])\n"
        << "    h = torch.max_pool2d(torch.relu(torch.conv2d(h, self.c1_w, self.c1_b, [1, 1], [1, 1])), [2, 2], [2, 2])\n"
        << "    h = torch.max_pool2d(torch.relu(torch.conv2d(h, self.c2_w, self.c2_b, [1, 1], [1, 1])), [2, 2], [2, 2])\n"
        << "    h = h.reshape([h.size(0), -1])\n";
    } else {
      s << "    h = torch.relu(torch.linear(x, self.h_w, self.h_b))\n";
    }
    s << "    return torch.relu(torch.linear(h, self.f_w, self.f_b))\n"
      << "def forward(self, x: Tensor) -> Tensor:\n"
      << "    return torch.linear(self.features(x), self.o_w, self.o_b)\n";
    return s.str();
  }
};

// A module with PyTorch-default initialised parameters (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) from
// Philox stream (seed, 2000 + p)) and the methods of Arch::script.
torch::jit::Module build(const Arch& a, uint64_t seed) {
  torch::jit::Module m("otgen.FeatureNet");
  int64_t p = 0;
  for (const auto& [name, shape, fan] : a.params()) {
    at::Tensor w = at::empty(shape, at::kFloat);
    Rng rng(seed, static_cast<uint64_t>(2000 + p++));
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan));
    float* d = w.data_ptr<float>();
    for (int64_t k = 0; k < w.numel(); ++k) d[k] = static_cast<float>(bound * (2.0 * rng.uniform() - 1.0));
    m.register_parameter(name, w.requires_grad_(true), false);
  }
  m.define(a.script());
  return m;
}

at::Tensor rows_of(PointsView x, std::span<const int64_t> idx) {
  at::Tensor out = at::empty({static_cast<int64_t>(idx.size()), x.d}, at::kFloat);
  float* o = out.data_ptr<float>();
  for (size_t r = 0; r < idx.size(); ++r) std::copy(x.row(idx[r]), x.row(idx[r]) + x.d, o + r * x.d);
  return out;
}

// Accuracy of m on (x, labels), in batches.
double accuracy(torch::jit::Module& m, PointsView x, std::span<const int64_t> labels) {
  c10::InferenceMode guard;
  int64_t right = 0;
  for (int64_t i0 = 0; i0 < x.n; i0 += 1024) {
    const int64_t r = std::min<int64_t>(1024, x.n - i0);
    at::Tensor xt = at::from_blob(const_cast<float*>(x.row(i0)), {r, x.d}, at::kFloat);
    const at::Tensor pred = m.forward({xt}).toTensor().argmax(1).contiguous();
    const int64_t* p = pred.data_ptr<int64_t>();
    for (int64_t k = 0; k < r; ++k) right += p[k] == labels[i0 + k];
  }
  return static_cast<double>(right) / static_cast<double>(std::max<int64_t>(1, x.n));
}

void check_labels(std::span<const int64_t> labels, int64_t n, int64_t classes, const char* name) {
  require(static_cast<int64_t>(labels.size()) == n, name, "length " + std::to_string(labels.size()),
          "one label per row, " + std::to_string(n));
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      fail_argument(name, std::to_string(labels[i]) + " at row " + std::to_string(i),
                    "classes in [0, " + std::to_string(classes) + ")");
}

// Adam with a cosine-decayed step size on every parameter of m; returns the final minibatch loss.
double fit(torch::jit::Module& m, PointsView x, std::span<const int64_t> labels, const FeatureOptions& o, uint64_t seed) {
  std::vector<at::Tensor> params, mom, var;
  for (const auto& p : m.parameters()) {
    params.push_back(p);
    mom.push_back(at::zeros_like(p));
    var.push_back(at::zeros_like(p));
  }
  std::vector<int64_t> order(static_cast<size_t>(x.n));
  std::iota(order.begin(), order.end(), 0);
  int64_t cursor = x.n;  // reshuffled at the start of every pass
  Rng rng(seed, 0xfea7);
  double loss = 0;
  std::vector<int64_t> idx(static_cast<size_t>(std::min(o.batch, x.n)));
  for (int64_t k = 0; k < o.steps; ++k) {
    for (auto& i : idx) {
      if (cursor == x.n) {
        for (int64_t t = x.n - 1; t > 0; --t) std::swap(order[t], order[rng.below(t + 1)]);
        cursor = 0;
      }
      i = order[cursor++];
    }
    at::Tensor y = at::empty({static_cast<int64_t>(idx.size())}, at::kLong);
    for (size_t r = 0; r < idx.size(); ++r) y.data_ptr<int64_t>()[r] = labels[idx[r]];
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    const at::Tensor l = at::cross_entropy_loss(m.forward({rows_of(x, idx)}).toTensor(), y);
    l.backward();
    loss = l.item<double>();
    if (!std::isfinite(loss))
      throw Error("features: the training loss became " + to_text(loss) + " at step " + std::to_string(k) +
                  ": lower --lr");
    at::NoGradGuard no_grad;
    const double lr = 0.5 * o.lr * (1.0 + std::cos(M_PI * static_cast<double>(k) / static_cast<double>(o.steps)));
    const double bc1 = 1.0 - std::pow(0.9, k + 1.0), bc2 = 1.0 - std::pow(0.999, k + 1.0);
    for (size_t p = 0; p < params.size(); ++p) {
      const at::Tensor& g = params[p].grad();
      mom[p].mul_(0.9).add_(g, 0.1);
      var[p].mul_(0.999).addcmul_(g, g, 0.001);
      params[p].addcdiv_(mom[p], var[p].sqrt().div_(std::sqrt(bc2)).add_(1e-8), -lr / bc1);
    }
  }
  return loss;
}

}  // namespace

void FeatureOptions::validate() const {
  require(steps >= 1, "steps", steps, "a positive number of steps");
  require(batch >= 1, "batch", batch, "a positive batch size");
  require(lr > 0 && std::isfinite(lr), "lr", lr, "a positive finite step size");
  require(width >= 1 && width <= 1024, "width", width, "1 <= width <= 1024");
  require(feature_dim >= 2 && feature_dim <= 4096, "feature_dim", feature_dim, "2 <= feature_dim <= 4096");
}

nlohmann::json train_feature_net(PointsView x, std::span<const int64_t> labels, int64_t classes, int64_t image_side,
                                 PointsView x_test, std::span<const int64_t> labels_test, const FeatureOptions& options,
                                 const std::string& path, const std::string& dataset, const Context& ctx) {
  options.validate();
  require(x.n >= 1, "data", std::to_string(x.n) + " points", "at least one labelled point");
  require(x_test.n >= 1, "test data", std::to_string(x_test.n) + " points", "at least one held-out point");
  require(x_test.d == x.d, "test data", "dimension " + std::to_string(x_test.d), "the data's, " + std::to_string(x.d));
  require(classes >= 2, "labels", std::to_string(classes) + " classes", "at least 2 classes");
  check_labels(labels, x.n, classes, "labels");
  check_labels(labels_test, x_test.n, classes, "test labels");
  Arch a{x.d, image_side, 0, classes, options};
  if (image_side > 0) {
    require(image_side >= 4 && x.d % (image_side * image_side) == 0, "image_side", image_side,
            "a side >= 4 whose square divides the dimension " + std::to_string(x.d));
    a.channels = x.d / (image_side * image_side);
  }
  flow::detail::use_threads(ctx);
  const auto t0 = std::chrono::steady_clock::now();
  torch::jit::Module m = build(a, ctx.seed);
  const double final_loss = fit(m, x, labels, options, ctx.seed);
  nlohmann::json meta{{"format", kFormat},
                      {"dataset", dataset},
                      {"dim", x.d},
                      {"image_side", image_side},
                      {"channels", a.channels},
                      {"classes", classes},
                      {"feature_dim", options.feature_dim},
                      {"architecture", image_side > 0 ? "cnn" : "mlp"},
                      {"options", {{"steps", options.steps}, {"batch", options.batch}, {"lr", options.lr}, {"width", options.width}}},
                      {"seed", ctx.seed},
                      {"train_points", x.n},
                      {"test_points", x_test.n},
                      {"final_loss", final_loss},
                      {"train_accuracy", accuracy(m, x, labels)},
                      {"test_accuracy", accuracy(m, x_test, labels_test)},
                      {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
                      {"input", "x: float32 (B, dim) flattened rows, as the data"},
                      {"methods", "forward(x) -> logits (B, classes); features(x) -> (B, feature_dim), the penultimate layer"}};
  for (const auto& p : m.parameters()) p.requires_grad_(false);
  torch::jit::ExtraFilesMap extra{{"otgen.json", meta.dump(2)}};
  flow::detail::atomic_save(path, [&](const std::string& tmp) { m.save(tmp, extra); });
  return meta;
}

struct FeatureNet::Impl {
  mutable torch::jit::Module m;
  nlohmann::json meta;
  int64_t dim = 0, feature_dim = 0;
};

FeatureNet FeatureNet::load(const std::string& path, std::string_view argument) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail_argument(argument, "'" + path + "'", "an existing feature net (written by otgen features train)");
  torch::jit::ExtraFilesMap extra{{"otgen.json", ""}};
  auto impl = std::make_shared<Impl>();
  try {
    impl->m = torch::jit::load(path, c10::nullopt, extra);
    impl->meta = nlohmann::json::parse(extra["otgen.json"]);
  } catch (const std::exception&) {
    fail_argument(argument, "'" + path + "'", "a TorchScript feature net written by otgen features train");
  }
  if (!impl->meta.is_object() || impl->meta.value("format", "") != kFormat || !impl->m.find_method("features"))
    fail_argument(argument, "'" + path + "'", std::string("a feature net (format ") + kFormat + ")");
  impl->dim = impl->meta.value("dim", int64_t{0});
  impl->feature_dim = impl->meta.value("feature_dim", int64_t{0});
  impl->m.eval();
  FeatureNet f;
  f.impl_ = std::move(impl);
  return f;
}

Points FeatureNet::features(PointsView x, const Context& ctx, std::string_view argument) const {
  require(x.d == impl_->dim, argument, "dimension " + std::to_string(x.d),
          "the feature net's input dimension, " + std::to_string(impl_->dim));
  flow::detail::use_threads(ctx);
  c10::InferenceMode guard;
  Points out(x.n, impl_->feature_dim);
  for (int64_t i0 = 0; i0 < x.n; i0 += 1024) {
    const int64_t r = std::min<int64_t>(1024, x.n - i0);
    at::Tensor xt = at::from_blob(const_cast<float*>(x.row(i0)), {r, x.d}, at::kFloat);
    const at::Tensor f = impl_->m.run_method("features", xt).toTensor().to(at::kFloat).contiguous();
    std::copy(f.data_ptr<float>(), f.data_ptr<float>() + f.numel(), out.row(i0));
  }
  return out;
}

std::vector<int64_t> FeatureNet::predict(PointsView x, const Context& ctx) const {
  require(x.d == impl_->dim, "x", "dimension " + std::to_string(x.d), "the feature net's, " + std::to_string(impl_->dim));
  flow::detail::use_threads(ctx);
  c10::InferenceMode guard;
  at::Tensor xt = at::from_blob(const_cast<float*>(x.data), {x.n, x.d}, at::kFloat);
  const at::Tensor p = impl_->m.forward({xt}).toTensor().argmax(1).contiguous();
  return {p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + p.numel()};
}

const nlohmann::json& FeatureNet::meta() const { return impl_->meta; }
int64_t FeatureNet::dim() const { return impl_->dim; }
int64_t FeatureNet::feature_dim() const { return impl_->feature_dim; }

}  // namespace otgen::features
