// otgen ot exact | sinkhorn: batch optimal transport between two point files (SPEC.md §2), cost
// |x - y|^2 / 2. Each prints one JSON line on stdout with the result summary.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "otgen/ot/assignment.h"
#include "otgen/coupling/coupling.h"
#include "otgen/core/error.h"
#include "otgen/core/memory.h"
#include "otgen/core/npy.h"
#include "otgen/ot/potential_meta.h"
#include "otgen/ot/sinkhorn.h"

namespace otgen::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct ExactArgs {
  std::string source, target, out, solver = "jv";
  Context ctx;
};

void run_exact(const ExactArgs& a) {
  a.ctx.validate();
  require_output_file(a.out, "--out", {{"--source", &a.source}, {"--target", &a.target}});
  const Points x = read_points_npy(a.source, "--source");
  const Points y = read_points_npy(a.target, "--target");
  require(x.n == y.n, "--target", a.target + " with " + std::to_string(y.n) + " points",
          "as many points as --source (" + std::to_string(x.n) + "): exact assignment pairs the batches one to one");
  require(x.d == y.d, "--target", a.target + " of dimension " + std::to_string(y.d),
          "the dimension of --source, " + std::to_string(x.d));
  AssignmentOptions opt;
  opt.solver = a.solver == "jv" ? AssignmentSolver::JonkerVolgenant : AssignmentSolver::NetworkSimplex;
  require_memory("--source", a.source + " with " + std::to_string(x.n) + " points", exact_assignment_bytes(x.n, opt.solver),
                 "the n x n cost matrix of --solver " + a.solver);
  const auto t0 = std::chrono::steady_clock::now();
  const AssignmentResult r = exact_assignment(x, y, a.ctx, opt);
  const double secs = seconds_since(t0);
  write_npy(a.out, r.permutation, {x.n});
  std::cout << nlohmann::json{{"out", a.out}, {"n", x.n}, {"d", x.d}, {"solver", a.solver}, {"total_cost", r.cost},
                              {"mean_cost", r.cost / static_cast<double>(x.n)}, {"seconds", secs}}
                   .dump()
            << "\n";
}

// One meaning of epsilon in every command and in Python (docs/batch_ot.md#epsilon): a given epsilon is
// absolute unless --relative-epsilon makes it a multiple of std(C); not given, Sinkhorn's is 0.05 x std(C).
constexpr double kDefaultRelativeEpsilon = 0.05;

void resolve_epsilon(SinkhornOptions& o, bool given) {
  if (given) return;
  o.epsilon = kDefaultRelativeEpsilon;
  o.relative_epsilon = true;
}

struct SinkhornArgs {
  std::string source, target, out_f, out_g, mode = "auto";
  SinkhornOptions opt;
  bool no_scaling = false, epsilon_given = false;
  Context ctx;
};

void run_sinkhorn(SinkhornArgs a) {
  a.ctx.validate();
  resolve_epsilon(a.opt, a.epsilon_given);
  a.opt.eps_scaling = !a.no_scaling;
  a.opt.mode = a.mode == "dense" ? SinkhornMode::Dense : a.mode == "online" ? SinkhornMode::Online : SinkhornMode::Auto;
  a.opt.validate();
  require_output_files({{"--out-f", &a.out_f}, {"--out-g", &a.out_g}}, {{"--source", &a.source}, {"--target", &a.target}});
  const Points x = read_points_npy(a.source, "--source");
  const Points y = read_points_npy(a.target, "--target");
  require(x.d == y.d, "--target", a.target + " of dimension " + std::to_string(y.d),
          "the dimension of --source, " + std::to_string(x.d));
  const auto t0 = std::chrono::steady_clock::now();
  const SinkhornResult r = sinkhorn(x, y, {}, {}, a.ctx, a.opt);
  const double secs = seconds_since(t0);
  if (!a.out_f.empty()) write_npy(a.out_f, std::span<const double>(r.f), {x.n});
  if (!a.out_g.empty()) write_npy(a.out_g, std::span<const double>(r.g), {y.n});
  nlohmann::json j{{"n", x.n},
                   {"m", y.n},
                   {"d", x.d},
                   {"epsilon", r.epsilon},
                   {"iterations", r.iterations},
                   {"stages", r.stages},
                   {"marginal_error", r.marginal_error},
                   {"cost", r.transport_cost},
                   {"dual_objective", r.dual_objective},
                   {"mode", r.dense ? "dense" : "online"},
                   {"termination", termination_name(r.termination)},
                   {"message", r.message},
                   {"seconds", secs}};
  if (r.cost_std) j["cost_std"] = *r.cost_std;
  std::cout << j.dump() << "\n";
  if (r.termination == Termination::NumericalFailure) throw Error("ot sinkhorn: " + r.message);
  if (r.termination == Termination::MaxSteps) std::cerr << "ot sinkhorn: not converged: " << r.message << "\n";
}

struct CoupleArgs {
  std::string coupling = "exact", data, labels, noise, potential, out;
  double epsilon = 0.0;  // absolute (sinkhorn: times std(C) with relative_epsilon); not given: see resolve_epsilon
  int64_t num_classes = 0;
  bool round = false, relative_epsilon = false, epsilon_given = false;
  Context ctx;
};

void run_couple(const CoupleArgs& a) {
  a.ctx.validate();
  require(a.coupling == "sinkhorn" || !a.relative_epsilon, "--relative-epsilon", "given",
          "with --coupling sinkhorn only (a semidiscrete epsilon is absolute: the one of the fit)");
  require_output_files({{"--out", &a.out}}, {{"--data", &a.data}, {"--noise", &a.noise}, {"--labels", &a.labels},
                                             {"--potential", &a.potential}});
  const Points y = read_points_npy(a.data, "--data");
  const Points x = read_points_npy(a.noise, "--noise");
  std::vector<int64_t> labels;
  if (!a.labels.empty()) labels = read_labels_npy(a.labels, "--labels");
  int64_t classes = a.num_classes;
  for (int64_t l : labels) classes = std::max(classes, l + 1);
  const CouplingData data{y.view(), labels, classes};
  std::unique_ptr<Coupling> c;
  if (a.coupling == "independent") {
    c = std::make_unique<IndependentCoupling>(data);
  } else if (a.coupling == "semidiscrete") {
    std::vector<float> g(static_cast<size_t>(y.n), 0.0f), basis;
    if (!a.potential.empty()) {
      const std::vector<double> gd = read_vector_npy(a.potential, "--potential");
      g.assign(gd.begin(), gd.end());
      basis = read_potential_basis(a.potential, y.d, "--potential");  // PCA-reduced matching
    }
    c = std::make_unique<SemidiscreteCoupling>(data, std::move(g), a.epsilon, std::vector<double>{},
                                               std::numeric_limits<double>::infinity(), std::move(basis));
  } else {
    BatchOTOptions opt;
    opt.method = a.coupling == "exact" ? BatchOTMethod::Exact : BatchOTMethod::Sinkhorn;
    opt.sinkhorn.epsilon = a.epsilon;
    opt.sinkhorn.relative_epsilon = a.relative_epsilon;
    resolve_epsilon(opt.sinkhorn, a.epsilon_given);
    opt.round_to_permutation = a.round;
    c = std::make_unique<BatchOTCoupling>(data, opt);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Pairs p = c->sample(x, a.ctx.seed, a.ctx);
  const double secs = seconds_since(t0);
  if (!a.out.empty()) write_npy(a.out, p.target, {x.n});
  const double cost = matching_cost(x, y, p.target) / static_cast<double>(x.n);
  std::cout << nlohmann::json{{"coupling", c->name()}, {"n", x.n}, {"N", y.n}, {"d", x.d}, {"seconds", secs},
                              {"us_per_pair", 1e6 * secs / static_cast<double>(x.n)}, {"mean_pair_cost", cost}}
                   .dump()
            << "\n";
}

void register_ot(CLI::App& root) {
  CLI::App* ot = group(root, "ot", "batch optimal transport: exact assignment and Sinkhorn (cost |x - y|^2 / 2)");

  auto e = std::make_shared<ExactArgs>();
  CLI::App* ex = ot->add_subcommand("exact", "optimal permutation between two equal-size batches (int64 .npy)");
  ex->add_option("--source", e->source, "(n, d) float .npy: the source points x")->required();
  ex->add_option("--target", e->target, "(n, d) float .npy: the target points y")->required();
  ex->add_option("--out", e->out, "output (n,) int64 .npy: x_i is matched to y[perm[i]]")->required();
  ex->add_option("--solver", e->solver, "jv (Jonker-Volgenant, default) or network-simplex (LEMON)")
      ->check(CLI::IsMember({"jv", "network-simplex"}));
  add_context_options(ex, e->ctx, /*with_seed=*/false);
  ex->callback([e] { run_exact(*e); });

  auto s = std::make_shared<SinkhornArgs>();
  CLI::App* sk = ot->add_subcommand("sinkhorn", "entropic OT potentials by log-domain Sinkhorn (float64 .npy)");
  sk->add_option("--source", s->source, "(n, d) float .npy: the source points x")->required();
  sk->add_option("--target", s->target, "(m, d) float .npy: the target points y")->required();
  sk->add_option("--epsilon", s->opt.epsilon,
                 "entropic regularisation (> 0), absolute (POT's reg is 2 * epsilon); default 0.05 x std(C)")
      ->each([s](const std::string&) { s->epsilon_given = true; });
  sk->add_flag("--relative-epsilon", s->opt.relative_epsilon, "--epsilon is a multiple of std(C), the std of the cost matrix");
  sk->add_option("--tol", s->opt.tol, "stop when the L1 marginal error <= tol (default 1e-4)");
  sk->add_option("--max-iter", s->opt.max_iterations, "iteration cap (default 10000)");
  sk->add_option("--check-every", s->opt.check_every, "test the stopping rule every k iterations (default 1)");
  sk->add_flag("--no-scaling", s->no_scaling, "no epsilon scaling (start at the target epsilon)");
  sk->add_option("--mode", s->mode, "auto (default), dense (store the matrix) or online (never store it)")
      ->check(CLI::IsMember({"auto", "dense", "online"}));
  sk->add_option("--out-f", s->out_f, "output (n,) float64 .npy: potential f");
  sk->add_option("--out-g", s->out_g, "output (m,) float64 .npy: potential g (centred)");
  add_context_options(sk, s->ctx, /*with_seed=*/false);
  sk->callback([s] { run_sinkhorn(*s); });

  auto c = std::make_shared<CoupleArgs>();
  CLI::App* cp = ot->add_subcommand("couple", "pair a noise batch with data points by a coupling (int64 .npy of data rows)");
  cp->add_option("--coupling", c->coupling, "independent, exact (batch OT), sinkhorn (batch OT) or semidiscrete")
      ->check(CLI::IsMember({"independent", "exact", "sinkhorn", "semidiscrete"}));
  cp->add_option("--data", c->data, "(N, d) float .npy: the data set")->required();
  cp->add_option("--noise", c->noise, "(n, d) float .npy: the noise batch x0")->required();
  cp->add_option("--labels", c->labels, "(N,) int64 .npy: data labels (reported per pair)");
  cp->add_option("--potential", c->potential, "semidiscrete: (N,) float .npy potential g (default 0)");
  cp->add_option("--epsilon", c->epsilon,
                 "absolute epsilon; sinkhorn: default 0.05 x std(C); semidiscrete: the fit's (default 0 = argmax)")
      ->each([c](const std::string&) { c->epsilon_given = true; });
  cp->add_flag("--relative-epsilon", c->relative_epsilon, "sinkhorn: --epsilon is a multiple of std(C) of the batch pair");
  cp->add_flag("--round", c->round, "sinkhorn: round the row draws to a permutation");
  cp->add_option("--out", c->out, "output (n,) int64 .npy: data row of each noise row");
  add_context_options(cp, c->ctx);
  cp->callback([c] { run_couple(*c); });
}

OTGEN_REGISTER_COMMAND("ot", register_ot);

}  // namespace
}  // namespace otgen::cli
