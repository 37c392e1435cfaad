// otgen sdot assign: the eps = 0 semidiscrete assignment of noise rows to data points,
// idx[i] = argmax_j <x_i, y_j> + g_j - |y_j|^2 / 2 (cost |x - y|^2 / 2; SPEC.md §1), by the score engine.
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "otgen/error.h"
#include "otgen/npy.h"
#include "otgen/scores.h"

namespace otgen::cli {
namespace {

struct AssignArgs {
  std::string data, potential, noise, out;
  Context ctx;
};

void run_assign(const AssignArgs& a) {
  a.ctx.validate();
  const auto t0 = std::chrono::steady_clock::now();
  const Points y = read_points_npy(a.data, "--data");
  const std::vector<double> g = read_vector_npy(a.potential, "--potential");
  const Points x = read_points_npy(a.noise, "--noise");
  require(x.d == y.d, "--noise", a.noise + " of dimension " + std::to_string(x.d),
          "the dimension of --data, " + std::to_string(y.d));
  require(static_cast<int64_t>(g.size()) == y.n, "--potential", a.potential + " of length " + std::to_string(g.size()),
          "one value per --data point, " + std::to_string(y.n));
  require(y.n > 0 || x.n == 0, "--data", a.data + " with 0 points", "at least one point");
  // h_j = g_j - |y_j|^2 / 2, in double before rounding to the engine's float.
  std::vector<float> h(static_cast<size_t>(y.n));
  for (int64_t j = 0; j < y.n; ++j) {
    double yn = 0;
    for (int64_t k = 0; k < y.d; ++k) yn += static_cast<double>(y.row(j)[k]) * y.row(j)[k];
    h[j] = static_cast<float>(g[j] - 0.5 * yn);
  }
  std::vector<int64_t> idx(static_cast<size_t>(x.n));
  std::vector<float> value(static_cast<size_t>(x.n));
  row_argmax({x, y, h}, idx, value, a.ctx);
  write_npy(a.out, idx, {x.n});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << nlohmann::json{{"out", a.out}, {"n", x.n}, {"m", y.n}, {"d", y.d}, {"seconds", seconds}}.dump() << "\n";
}

void register_sdot_assign(CLI::App& root) {
  CLI::App* sdot = group(root, "sdot", "semidiscrete optimal transport: fit potentials, assign noise to data");
  auto a = std::make_shared<AssignArgs>();
  CLI::App* cmd = sdot->add_subcommand(
      "assign", "write idx[i] = argmax_j <x_i, y_j> + g_j - |y_j|^2/2 (int64 .npy): the eps = 0 assignment");
  cmd->add_option("--data", a->data, "(m, d) float .npy: the data points y")->required();
  cmd->add_option("--potential", a->potential, "(m,) float .npy: the potential g")->required();
  cmd->add_option("--noise", a->noise, "(n, d) float .npy: the noise points x")->required();
  cmd->add_option("--out", a->out, "output (n,) int64 .npy of data indices")->required();
  add_context_options(cmd, a->ctx, /*with_seed=*/false);
  cmd->callback([a] { run_assign(*a); });
}

OTGEN_REGISTER_COMMAND("sdot assign", register_sdot_assign);

}  // namespace
}  // namespace otgen::cli
