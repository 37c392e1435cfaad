// otgen sdot assign: the semidiscrete assignment of noise rows to data points (SPEC.md §1), by the score
// engine: eps = 0, idx[i] = argmax_j <x_i, y_j> + g_j - |y_j|^2 / 2 (cost |x - y|^2 / 2); eps > 0, a draw
// j ~ s(x_i) by Gumbel-max. Noise from --noise, or --n fresh N(0, I) draws from --seed (--noise-out).
// Weights (masking), conditional maps (--labels with noise classes) and the dot cost as in semidiscrete.h.
#include <chrono>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/target.h"
#include "otgen/core/error.h"
#include "otgen/core/memory.h"
#include "otgen/core/npy.h"
#include "otgen/ot/potential_meta.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/core/streams.h"

namespace otgen::cli {
namespace {

struct AssignArgs {
  std::string data, potential, noise, out, weights, labels, noise_labels, noise_out, noise_labels_out;
  std::string cost = "sqeuclidean_half";
  double epsilon = 0, class_penalty = std::numeric_limits<double>::infinity();
  int64_t n = 0;
  CLI::Option* n_option = nullptr;  // --n given?
  bool allow_foreign = false;
  Context ctx;
  ScoreOptions engine;
};

// The whole target on one process (the single-process messages).
void load_whole(const AssignArgs& a, Target& t, std::vector<float>& g) {
  t.y = read_points_npy(a.data, "--data");
  const Points& y = t.y;
  const std::vector<double> gd = read_vector_npy(a.potential, "--potential");
  require(static_cast<int64_t>(gd.size()) == y.n, "--potential", a.potential + " of length " + std::to_string(gd.size()),
          "one value per --data point, " + std::to_string(y.n));
  require(y.n > 0, "--data", a.data + " with 0 points", "at least one point");
  g.assign(gd.begin(), gd.end());
  if (!a.weights.empty()) t.b = read_vector_npy(a.weights, "--weights");
  if (!a.labels.empty()) t.l = read_labels_npy(a.labels, "--labels");
  t.total = y.n;
}

void run_assign(const AssignArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  // Under mpirun each rank reads its rows of the data (cli/target.h); the noise is the same on every
  // rank; checks agree (one message, every rank exits 2).
  const Communicator& comm = a.ctx.communicator();
  SdotCost cost{};
  const bool drawn = a.n_option->count() > 0;
  collectively(comm, [&] {
    a.ctx.validate();
    require(a.noise.empty() == drawn, "--noise", a.noise.empty() ? "(none)" : a.noise,
            "exactly one of --noise X.npy and --n M");
    require(!drawn || a.n >= 1, "--n", a.n, "a number of noise rows >= 1");
    require(a.noise_out.empty() || drawn, "--noise-out", a.noise_out, "--n (it writes the drawn noise)");
    require(a.noise_labels.empty() || !drawn, "--noise-labels", a.noise_labels,
            "--noise (with --n the classes are drawn: --noise-labels-out writes them)");
    require(!a.out.empty(), "--out", "''", "an output .npy path");
    require_output_files({{"--out", &a.out}, {"--noise-out", &a.noise_out}, {"--noise-labels-out", &a.noise_labels_out}},
                         {{"--data", &a.data}, {"--potential", &a.potential}, {"--noise", &a.noise},
                          {"--weights", &a.weights}, {"--labels", &a.labels}, {"--noise-labels", &a.noise_labels}});
    cost = parse_sdot_cost(a.cost, "--cost");
  });
  Target t;
  t.data = a.data, t.weights = a.weights, t.labels = a.labels;
  std::vector<float> g;
  if (comm.size() > 1) {
    t.load(comm);
    g = t.potential(a.potential, "--potential", comm);
  } else {
    load_whole(a, t, g);
  }
  const Points& y = t.y;
  const std::vector<int64_t>& labels = t.l;
  std::vector<int64_t> xl;
  std::vector<float> basis;  // PCA-reduced matching: the basis the sidecar names
  collectively(comm, [&] { basis = read_potential_basis(a.potential, y.d, "--potential"); });
  SemidiscreteMap map(t.problem(cost, a.class_penalty), g, a.epsilon, basis);
  if (!a.allow_foreign) {
    const auto actual = t.meta(a.epsilon, map.cost, a.class_penalty, comm);  // sharded: rank 0's
    collectively(comm, [&] {
      if (comm.rank() == 0) check_potential_meta(a.potential, actual, "--potential");
    });
  }
  const bool writer = comm.rank() == 0;
  if (a.epsilon <= 0) sdot_prepare(map, a.ctx, a.engine);  // eps > 0 samples: no argmax to screen
  Points x;
  if (drawn) {
    require_memory("--n", a.n, rows_bytes(a.n, y.d, 16),
                   "n noise rows of dimension " + std::to_string(y.d) + ", their indices and classes (4 d + 16 bytes a row)");
    x = sdot_noise(a.n, y.d, a.ctx.seed, a.ctx);
    xl = sdot_noise_classes(map, a.n, a.ctx.seed);
    if (!a.noise_out.empty() && writer) write_npy(a.noise_out, x);
  } else {
    collectively(comm, [&] {
      x = read_points_npy(a.noise, "--noise");
      require(x.d == y.d, "--noise", a.noise + " of dimension " + std::to_string(x.d),
              "the dimension of --data, " + std::to_string(y.d));
      if (!a.noise_labels.empty()) xl = read_labels_npy(a.noise_labels, "--noise-labels");
      require(labels.empty() || !xl.empty() || x.n == 0, "--noise-labels", "(none)",
              "the class of each noise row when --labels is given (or use --n to draw both)");
    });
  }
  require(a.noise_labels_out.empty() || !labels.empty(), "--noise-labels-out", a.noise_labels_out,
          "--labels (only conditional maps draw noise classes)");
  if (!a.noise_labels_out.empty() && writer) write_npy(a.noise_labels_out, xl, {static_cast<int64_t>(xl.size())});
  // eps = 0: argmax_j g_j - c(x_i, y_j); eps > 0: a draw from s(x_i) by Gumbel-max (seeded).
  const std::vector<int64_t> idx =
      a.epsilon > 0 ? sdot_sample(map, x, stream_key(a.ctx.seed, Stream::Assign), a.ctx, xl, a.engine)
                    : sdot_assign(map, x, a.ctx, xl, a.engine);
  if (!writer) return;
  write_npy(a.out, idx, {x.n});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << nlohmann::json{{"out", a.out}, {"n", x.n}, {"m", t.total}, {"d", y.d}, {"epsilon", a.epsilon},
                              {"seconds", seconds}, {"int8_screen", sdot_int8_screen(map)},
                              {"engine", sdot_argmax_engine(map, a.engine)}}.dump()
            << "\n";
}

void register_sdot_assign(CLI::App& root) {
  CLI::App* sdot = group(root, "sdot", "semidiscrete optimal transport: fit potentials, assign noise to data");
  auto a = std::make_shared<AssignArgs>();
  CLI::App* cmd = sdot->add_subcommand(
      "assign", "pair noise with data: idx[i] = argmax_j g_j - c(x_i, y_j) (eps = 0), or j ~ s(x_i) (eps > 0)");
  cmd->add_option("--data", a->data, "(m, d) float .npy: the data points y")->required();
  cmd->add_option("--potential", a->potential, "(m,) float .npy: the potential g")->required();
  cmd->add_option("--noise", a->noise, "(n, d) float .npy: the noise points x (or --n)");
  a->n_option = cmd->add_option("--n", a->n, "draw this many N(0, I) noise points from --seed instead of --noise");
  cmd->add_option("--noise-out", a->noise_out, "with --n: write the drawn noise (n, d) float32 .npy");
  cmd->add_option("--epsilon", a->epsilon, "absolute epsilon: > 0 samples j ~ s(x) by Gumbel-max (seeded)")
      ->capture_default_str();
  cmd->add_option("--weights", a->weights, "(m,) .npy target weights (default uniform; 0 = never assigned)");
  cmd->add_option("--labels", a->labels, "(m,) int64 .npy classes of the data (conditional map)");
  cmd->add_option("--noise-labels", a->noise_labels, "(n,) int64 .npy classes of --noise rows");
  cmd->add_option("--noise-labels-out", a->noise_labels_out, "with --n and --labels: write the drawn classes");
  cmd->add_option("--class-penalty", a->class_penalty, "labels: beta of c + beta [k != l] (default inf)");
  cmd->add_flag("--allow-foreign-potential", a->allow_foreign,
                "use --potential even when its sidecar (g.npy.json) says it was fitted on other data, labels, weights or cost");
  cmd->add_option("--cost", a->cost, "sqeuclidean_half | dot")->capture_default_str();
  cmd->add_option("--out", a->out, "output (n,) int64 .npy of data indices")->required();
  add_context_options(cmd, a->ctx);
  add_engine_options(cmd, a->engine);
  cmd->callback([a] { run_assign(*a); });
}

OTGEN_REGISTER_COMMAND("sdot assign", register_sdot_assign);

}  // namespace
}  // namespace otgen::cli
