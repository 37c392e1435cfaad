// otgen data export | info: datasets as .npy files, and their summary.
#include <algorithm>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "otgen/data/data.h"
#include "otgen/core/error.h"
#include "otgen/core/npy.h"

namespace otgen::cli {
namespace {

struct DataArgs {
  std::string dataset;
  DatasetOptions opt;
  std::string out, labels_out;
};

void add_dataset_options(CLI::App* cmd, DataArgs& a) {
  std::string names;
  for (const auto& n : dataset_names()) names += (names.empty() ? "" : ", ") + n;
  cmd->add_option("--dataset", a.dataset, "dataset: " + names)->required();
  cmd->add_option("--n", a.opt.n, "points: the first N of a real dataset, N draws of a generator (default all / 1000)");
  cmd->add_option("--seed", a.opt.seed, "seed of generators and of --shuffle");
  cmd->add_flag("--shuffle", a.opt.shuffle, "seeded shuffle of a real dataset before taking --n");
  cmd->add_flag("--test-split", a.opt.test_split, "fashion-mnist: the 10000-image test set");
  cmd->add_option("--data", a.opt.path, "dataset npy: the (n, d) float32/float64 file");
  cmd->add_option("--labels", a.opt.labels_path, "dataset npy: optional (n,) int64 labels");
}

nlohmann::json summary(const Dataset& ds) {
  float lo = 0, hi = 0;
  if (!ds.x.data.empty()) {
    auto [mn, mx] = std::minmax_element(ds.x.data.begin(), ds.x.data.end());
    lo = *mn, hi = *mx;
  }
  return {{"dataset", ds.name}, {"n", ds.x.n}, {"d", ds.x.d}, {"classes", ds.num_classes},
          {"image_side", ds.image_side}, {"min", lo}, {"max", hi}};
}

void register_data(CLI::App& root) {
  CLI::App* data = group(root, "data", "export datasets as .npy, or summarise them");

  auto ex = std::make_shared<DataArgs>();
  CLI::App* exp = data->add_subcommand("export", "write a dataset as an (n, d) float32 .npy (+ int64 labels)");
  add_dataset_options(exp, *ex);
  exp->add_option("--out", ex->out, "output .npy of the points")->required();
  exp->add_option("--labels-out", ex->labels_out, "output .npy of the labels (int64)");
  exp->callback([ex] {
    require(!ex->out.empty(), "--out", "''", "an output .npy path");
    require_output_files({{"--out", &ex->out}, {"--labels-out", &ex->labels_out}},
                         {{"--data", &ex->opt.path}, {"--labels", &ex->opt.labels_path}});
    Dataset ds = load_dataset(ex->dataset, ex->opt);
    if (!ex->labels_out.empty() && ds.labels.empty())
      fail_argument("--labels-out", ex->labels_out, "a labelled dataset ('" + ds.name + "' has no labels)");
    write_npy(ex->out, ds.x);
    if (!ex->labels_out.empty()) write_npy(ex->labels_out, ds.labels, {static_cast<int64_t>(ds.labels.size())});
    std::cout << summary(ds).dump() << "\n";
  });

  auto in = std::make_shared<DataArgs>();
  CLI::App* info = data->add_subcommand("info", "print a dataset's n, d, classes and value range as JSON");
  add_dataset_options(info, *in);
  info->callback([in] { std::cout << summary(load_dataset(in->dataset, in->opt)).dump() << "\n"; });
}

OTGEN_REGISTER_COMMAND("data", register_data);

}  // namespace
}  // namespace otgen::cli
