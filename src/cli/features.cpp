// otgen features train | extract: the classifier feature space of Frechet distances (otgen/flow/features.h).
#include <filesystem>
#include <iostream>
#include <memory>
#include <numeric>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "otgen/core/error.h"
#include "otgen/flow/features.h"
#include "otgen/core/npy.h"
#include "otgen/core/rng.h"

namespace otgen::cli {
namespace {

struct TrainArgs {
  std::string data, labels, test_data, test_labels, out;
  int64_t n = 0;
  double test_fraction = 0.2;
  bool force = false;
  features::FeatureOptions opt;
  Context ctx;
};

// Rows `idx` of ds (points and labels).
Dataset take(const Dataset& ds, std::span<const int64_t> idx) {
  Dataset out;
  out.name = ds.name;
  out.num_classes = ds.num_classes;
  out.image_side = ds.image_side;
  out.x = Points(static_cast<int64_t>(idx.size()), ds.x.d);
  for (size_t r = 0; r < idx.size(); ++r) {
    std::copy(ds.x.row(idx[r]), ds.x.row(idx[r]) + ds.x.d, out.x.row(static_cast<int64_t>(r)));
    out.labels.push_back(ds.labels[idx[r]]);
  }
  return out;
}

// The held-out set: --test-data, Fashion-MNIST's test split, or a seeded --test-fraction of the data.
std::pair<Dataset, Dataset> train_and_test(const TrainArgs& a) {
  Dataset ds = load_data(a.data, a.n, a.ctx.seed, a.labels);
  require(!ds.labels.empty(), "--data", "'" + a.data + "' without labels", "labelled data (a named dataset, or --labels)");
  if (!a.test_data.empty()) {
    require(!a.test_labels.empty(), "--test-labels", "(none)", "the labels of --test-data");
    Dataset test = load_data(a.test_data, 0, 0, a.test_labels);
    require(test.x.d == ds.x.d, "--test-data", "dimension " + std::to_string(test.x.d), "the dimension of --data, " + std::to_string(ds.x.d));
    return {std::move(ds), std::move(test)};
  }
  if (a.data == "fashion-mnist") {
    DatasetOptions o;
    o.test_split = true;
    return {std::move(ds), load_dataset(a.data, o)};
  }
  require(a.test_fraction > 0 && a.test_fraction < 1, "--test-fraction", a.test_fraction, "a fraction in (0, 1)");
  const auto held = static_cast<int64_t>(std::llround(a.test_fraction * static_cast<double>(ds.x.n)));
  require(held >= 1 && held < ds.x.n, "--test-fraction", a.test_fraction,
          "a fraction that leaves points on both sides (" + std::to_string(ds.x.n) + " points)");
  std::vector<int64_t> order(static_cast<size_t>(ds.x.n));
  std::iota(order.begin(), order.end(), 0);
  Rng rng(a.ctx.seed, 0x7e57);
  for (int64_t t = ds.x.n - 1; t > 0; --t) std::swap(order[t], order[rng.below(t + 1)]);
  const std::span<const int64_t> all(order);
  return {take(ds, all.subspan(static_cast<size_t>(held))), take(ds, all.first(static_cast<size_t>(held)))};
}

// The part of a feature net's metadata that says how it was made: a cached file is reused when equal.
nlohmann::json recipe(const nlohmann::json& meta) {
  nlohmann::json r = nlohmann::json::object();
  for (const char* k : {"dataset", "dim", "classes", "feature_dim", "options", "seed", "train_points", "test_points"})
    if (meta.contains(k)) r[k] = meta[k];
  return r;
}

void run_train(const TrainArgs& a) {
  a.opt.validate();
  require_output_file(a.out, "--out", {{"--data", &a.data}, {"--labels", &a.labels}, {"--test-data", &a.test_data}});
  auto [train, test] = train_and_test(a);
  const int64_t classes = std::max(train.num_classes, test.num_classes);
  std::error_code ec;
  const nlohmann::json requested{
      {"dataset", a.data}, {"dim", train.x.d}, {"classes", classes}, {"feature_dim", a.opt.feature_dim},
      {"options", {{"steps", a.opt.steps}, {"batch", a.opt.batch}, {"lr", a.opt.lr}, {"width", a.opt.width}}},
      {"seed", a.ctx.seed}, {"train_points", train.x.n}, {"test_points", test.x.n}};
  if (!a.force && std::filesystem::exists(a.out, ec)) {
    const features::FeatureNet cached = features::FeatureNet::load(a.out, "--out");
    if (recipe(cached.meta()) != requested)
      fail_argument("--out", "'" + a.out + "', a feature net made another way", "a new path, or --force to replace it");
    nlohmann::json out = cached.meta();
    out["cached"] = true;
    std::cout << out.dump() << "\n";
    return;
  }
  nlohmann::json meta = features::train_feature_net(train.x, train.labels, classes, train.image_side, test.x, test.labels,
                                                    a.opt, a.out, a.data, a.ctx);
  meta["cached"] = false;
  meta["out"] = a.out;
  std::cout << meta.dump() << "\n";
}

struct ExtractArgs {
  std::string model, data, out;
  Context ctx;
};

void run_extract(const ExtractArgs& a) {
  require_output_file(a.out, "--out", {{"--model", &a.model}, {"--data", &a.data}});
  const features::FeatureNet net = features::FeatureNet::load(a.model, "--model");
  const Points x = read_points_npy(a.data, "--data");
  write_npy(a.out, net.features(x, a.ctx, "--data"));
  std::cout << nlohmann::json{{"out", a.out}, {"n", x.n}, {"feature_dim", net.feature_dim()}}.dump() << "\n";
}

void register_features(CLI::App& root) {
  CLI::App* g = group(root, "features", "the classifier feature space of Frechet distances (fd-features)");
  auto t = std::make_shared<TrainArgs>();
  CLI::App* train = g->add_subcommand("train", "train the feature net (a small classifier) once and cache it as TorchScript");
  train->add_option("--data", t->data, "a labelled dataset name (digits, fashion-mnist) or an (n, d) float .npy")->required();
  train->add_option("--labels", t->labels, "(n,) int64 .npy classes of a .npy --data");
  train->add_option("--n", t->n, "only the first n points (0 = all)")->capture_default_str();
  train->add_option("--test-data", t->test_data, "held-out (m, d) .npy (default: Fashion-MNIST's test split, else --test-fraction)");
  train->add_option("--test-labels", t->test_labels, "(m,) int64 .npy classes of --test-data");
  train->add_option("--test-fraction", t->test_fraction, "share of the data held out for the accuracy")->capture_default_str();
  train->add_option("--steps", t->opt.steps, "Adam steps")->capture_default_str();
  train->add_option("--batch", t->opt.batch, "minibatch size")->capture_default_str();
  train->add_option("--lr", t->opt.lr, "Adam step size (cosine decay to 0)")->capture_default_str();
  train->add_option("--width", t->opt.width, "channels of the first conv (MLP: 8 x width units)")->capture_default_str();
  train->add_option("--feature-dim", t->opt.feature_dim, "units of the feature layer")->capture_default_str();
  train->add_option("--out", t->out, "the feature net .pt (reused when it exists and was made the same way)")->required();
  train->add_flag("--force", t->force, "retrain even when --out holds a feature net made another way");
  add_context_options(train, t->ctx);
  train->callback([t] { run_train(*t); });

  auto e = std::make_shared<ExtractArgs>();
  CLI::App* ex = g->add_subcommand("extract", "the features of (n, d) points: (n, feature_dim) float32 .npy");
  ex->add_option("--model", e->model, "a feature net .pt (otgen features train)")->required();
  ex->add_option("--data", e->data, "(n, d) float .npy")->required();
  ex->add_option("--out", e->out, "(n, feature_dim) float32 .npy")->required();
  add_context_options(ex, e->ctx, false);
  ex->callback([e] { run_extract(*e); });
}

}  // namespace

OTGEN_REGISTER_COMMAND("features", register_features);

}  // namespace otgen::cli
