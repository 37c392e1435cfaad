// A feature space for Frechet distances (flow layer; LibTorch inside, torch-free header).
//
// Inception-based FID needs pretrained weights that cannot be downloaded here, so otgen trains its own
// feature network once per dataset: a small classifier of the data's labels whose penultimate layer
// (post-ReLU, feature_dim units) is the feature space. For square images (image_side > 0) it is a CNN
// (conv 3x3 -> ReLU -> max-pool 2 -> conv 3x3 -> ReLU -> adaptive average pool to 4 x 4 -> linear ->
// ReLU = features -> linear = logits); for flat data an MLP (linear -> ReLU -> linear -> ReLU =
// features -> linear). It is saved as TorchScript with two methods, forward(x) -> logits and
// features(x) -> (B, feature_dim), both taking flat float32 rows (B, dim), and an otgen.json with the
// training set-up and the held-out accuracy; Python's torch.jit.load runs it.
//
// Thread-safety: train_feature_net and FeatureNet::features set LibTorch's process-wide thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "otgen/core/context.h"
#include "otgen/core/points.h"

namespace otgen::features {

struct FeatureOptions {
  int64_t steps = 1500;        // Adam steps on minibatches
  int64_t batch = 128;         // minibatch size
  double lr = 2e-3;            // Adam step size, cosine-decayed to 0
  int64_t width = 32;          // channels of the first conv (the second has 2 x width); MLP: 8 x width units
  int64_t feature_dim = 128;   // units of the feature layer
  void validate() const;
};

// Trains the feature net on (x, labels) with classes in [0, classes) and reports its accuracy on the
// held-out (x_test, labels_test) (both required, n >= 1 each). image_side > 0: x's rows are
// c x side x side images (dim divisible by side^2). Writes `path` atomically; returns its metadata:
// format, dataset, dim, image_side, channels, classes, feature_dim, options, seed, train_points,
// test_points, train_accuracy, test_accuracy, seconds.
nlohmann::json train_feature_net(PointsView x, std::span<const int64_t> labels, int64_t classes, int64_t image_side,
                                 PointsView x_test, std::span<const int64_t> labels_test, const FeatureOptions& options,
                                 const std::string& path, const std::string& dataset, const Context& ctx);

// A feature net written by train_feature_net.
class FeatureNet {
 public:
  // Throws otgen::Error naming `argument` when the file is missing or is not an otgen feature net.
  static FeatureNet load(const std::string& path, std::string_view argument = "--features");
  // The features of x (n, dim) with the net's dim: (n, feature_dim), in batches, without gradients.
  Points features(PointsView x, const Context& ctx, std::string_view argument = "samples") const;
  // Class predictions (argmax of the logits), length n.
  std::vector<int64_t> predict(PointsView x, const Context& ctx) const;
  const nlohmann::json& meta() const;
  int64_t dim() const;
  int64_t feature_dim() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace otgen::features
