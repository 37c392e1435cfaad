// otgen sdot fit | check: fit the semidiscrete potential of a dataset, and measure a potential's
// second marginal (chi2, TV). (`sdot assign` lives in sdot_assign.cpp.)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/target.h"
#include "otgen/core/error.h"
#include "otgen/core/interrupt.h"
#include "otgen/core/memory.h"
#include "otgen/core/npy.h"
#include "otgen/ot/potential_meta.h"
#include "otgen/core/record.h"
#include "otgen/ot/sdot_options.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/core/staging.h"

namespace otgen::cli {
namespace {

void add_target_options(CLI::App* cmd, Target& t) {
  cmd->add_option("--data", t.data, "target points: (N, d) float32/float64 .npy")->required();
  cmd->add_option("--weights", t.weights, "target weights b: (N,) .npy summing to 1 (default uniform; 0 = masked)");
  cmd->add_option("--labels", t.labels, "per-point classes: (N,) int64 .npy (conditional OT)");
}

// The record's value of an option: "auto" when unset, "inf" for an infinite real.
nlohmann::json option_json(const SdotOptionValue& v) {
  if (std::holds_alternative<std::monostate>(v)) return "auto";
  if (const double* x = std::get_if<double>(&v); x && std::isinf(*x)) return sdot_option_text(v);
  return std::visit([](const auto& x) -> nlohmann::json {
    if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::monostate>) return nullptr;
    else return x;
  }, v);
}

// Every option of the table (otgen/ot/sdot_options.h), as set.
nlohmann::json options_json(const SemidiscreteOT::Options& o) {
  nlohmann::json j = nlohmann::json::object();
  for (const SdotOption& spec : sdot_options()) j[std::string(spec.name)] = option_json(spec.get(o));
  return j;
}

// The flags generated from the option table: the text of each flag given, parsed once the command
// line is read (so the errors are the library's, naming the flag).
using GivenOptions = std::map<std::string_view, std::string>;

void add_table_options(CLI::App* cmd, GivenOptions& given) {
  const SemidiscreteOT::Options defaults;
  for (const SdotOption& spec : sdot_options()) {
    if (!spec.generic_flag) continue;
    const std::string flag(spec.flag), help(spec.help);
    if (spec.kind == SdotOptionKind::Flag) {
      cmd->add_flag_callback(flag, [&given, name = spec.name] { given[name] = "true"; }, help);
      continue;
    }
    cmd->add_option_function<std::string>(flag, [&given, name = spec.name](const std::string& s) { given[name] = s; },
                                          help)
        ->default_str(sdot_option_text(spec.get(defaults)))
        ->type_name(spec.kind == SdotOptionKind::Integer ? (spec.can_be_auto ? "INT|auto" : "INT")
                    : spec.kind == SdotOptionKind::Real  ? (spec.can_be_auto ? "REAL|auto" : "REAL")
                                                         : "NAME");
  }
}

void apply_table_options(const GivenOptions& given, SemidiscreteOT::Options& o) {
  for (const auto& [name, text] : given) {
    const SdotOption& spec = *find_sdot_option(name);
    spec.set(o, parse_sdot_option_text(spec, text, spec.flag), spec.flag);
  }
}

nlohmann::json opt_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

struct FitArgs {
  Target target;
  SemidiscreteOT::Options opt;
  Context ctx;
  GivenOptions given;
  std::string out, record, init = "auto";
};

// The fit's options from their flags (throws otgen::Error naming the flag).
void parse_fit_options(FitArgs& a, bool named_init) {
  apply_table_options(a.given, a.opt);
  if (named_init) a.opt.init = parse_sdot_init(a.init, "--init");
  a.opt.validate();
  a.ctx.validate();
  require(!a.out.empty(), "--out", "''", "an output .npy path");
  const std::string init_file = named_init ? std::string() : a.init, sidecar = potential_meta_path(a.out);
  const std::string basis = a.opt.pca > 0 ? potential_basis_path(a.out) : std::string();
  require_output_files({{"--out", &a.out}, {"--out (its sidecar)", &sidecar}, {"--out (its PCA basis)", &basis},
                        {"--record", &a.record}},
                       {{"--data", &a.target.data}, {"--weights", &a.target.weights},
                        {"--labels", &a.target.labels}, {"--init", &init_file}});
}

// The fit's result as the record and stdout show it.
nlohmann::json fit_summary(const SemidiscreteOT::Result& r) {
  return nlohmann::json{{"termination", termination_name(r.termination)},
                        {"stopped_by", r.stopped_by},
                        {"message", r.message},
                        {"steps", r.steps},
                        {"chi2", opt_json(r.chi2)},
                        {"epsilon", r.epsilon},
                        {"reference_cost_std", opt_json(r.reference_cost_std)},
                        {"seconds", r.seconds},
                        {"int8_screen", r.int8_screen},
                        {"engine", r.engine},
                        {"init", r.init},
                        {"lr", r.lr},
                        {"lr_final", r.lr_final},
                        {"gap_scale", r.gap_scale},
                        {"lr_scale", r.lr_scale},
                        {"chi2_every", r.chi2_every},
                        {"chi2_repeats", r.chi2_repeats},
                        {"pca", r.pca},
                        {"steps_per_second", r.seconds > 0 ? r.steps / r.seconds : 0.0}};
}

nlohmann::json history_json(const std::vector<SemidiscreteOT::HistoryRow>& history) {
  nlohmann::json hist = nlohmann::json::array();
  for (const auto& h : history)
    hist.push_back({{"step", h.step}, {"chi2", opt_json(h.chi2)}, {"tv", opt_json(h.tv)},
                    {"tv_bound", opt_json(h.tv_bound)}, {"chi2_sd", opt_json(h.chi2_sd)}, {"loss", h.loss},
                    {"lr", h.lr}, {"epsilon", h.epsilon}, {"seconds", h.seconds}});
  return hist;
}

// The fit's outputs, written (atomically, by rank 0) after every chi2 check and at the end: the PCA
// basis (fixed for the run) first, then g, then the sidecar that names both, then the record.
struct FitOutputs {
  const FitArgs& a;
  const Communicator& comm;
  nlohmann::json meta;  // the sidecar (sharded: computed once, rank 0 hashes the whole --data)
  bool basis_written = false;

  void write(const SemidiscreteOT::Result& r, bool final) {
    if (comm.rank() != 0) return;
    const int64_t d = a.target.y.d;
    if (!r.pca_basis.empty() && !basis_written) {
      write_npy(potential_basis_path(a.out), r.pca_basis, {r.pca, d});
      basis_written = true;
    }
    write_npy(a.out, r.g, {static_cast<int64_t>(r.g.size())});
    set_potential_basis(meta, r.pca_basis, d);
    meta["epsilon"] = r.epsilon;
    write_potential_meta(a.out, meta);
    if (a.record.empty()) return;
    nlohmann::json rec = run_record("sdot fit", a.ctx);
    rec["data"] = a.target.data;
    rec["n"] = a.target.total;
    if (comm.size() > 1) rec["ranks"] = comm.size();
    rec["d"] = a.target.y.d;
    rec["options"] = options_json(a.opt);
    rec["result"] = fit_summary(r);
    if (!final) rec["result"]["termination"] = "running";
    rec["history"] = history_json(r.history);
    write_json(a.record, rec);
  }
};

void run_fit(FitArgs& a) {
  // Checks run on every rank alike; under mpirun they agree (one message, every rank exits 2).
  const Communicator& comm = a.ctx.communicator();
  const bool named_init = a.init == "auto" || a.init == "zero" || a.init == "half-norm" || a.init == "gaussian";
  collectively(comm, [&] { parse_fit_options(a, named_init); });
  a.target.load(comm);
  collectively(comm, [&] {
    require_memory("--batch", a.opt.batch_size, rows_bytes(a.opt.batch_size, a.target.y.d, 32),
                   "a batch of noise rows of dimension " + std::to_string(a.target.y.d) + " (4 d + 32 bytes a row)");
  });
  std::vector<float> g0;
  if (!named_init) g0 = a.target.potential(a.init, "--init", comm);
  // Sharded: rank 0 writes the outputs; Result::g is the whole potential on every rank.
  FitOutputs outputs{a, comm, a.target.meta(a.opt.epsilon, a.opt.cost, a.opt.class_penalty, comm)};
  // A long run that is killed leaves its latest potential and record; Ctrl-C (one process) stops after
  // the step and writes the potential so far.
  publish_as_written();
  auto opt = a.opt;
  opt.on_check = [&](const SemidiscreteOT::Result& r) { outputs.write(r, false); };
  // Ctrl-C in one process: a request the fit polls. Sharded runs keep the default (every rank ends
  // at once, the staged files removed): a per-rank stop could leave the other ranks waiting.
  std::optional<InterruptScope> interrupts;
  Context ctx = a.ctx;
  if (comm.size() == 1) {
    interrupts.emplace();
    ctx.should_stop = interrupt_requested;
  }
  const auto res = SemidiscreteOT(opt).fit(a.target.y, a.target.b, ctx, a.target.l, g0);
  outputs.write(res, true);
  const nlohmann::json summary = fit_summary(res);
  if (comm.rank() == 0) std::cout << summary.dump() << "\n";
  if (res.termination == Termination::NumericalFailure) throw Error("sdot fit: " + res.message);
  if (res.termination == Termination::Interrupted) {
    std::cerr << "sdot fit: " << res.message << "; wrote the averaged potential so far to " << a.out
              << "; continue from it with --init " << a.out << "\n";
    std::exit(128 + interrupt_signal());
  }
}

void register_fit(CLI::App& root) {
  CLI::App* sdot = group(root, "sdot", "semidiscrete optimal transport: fit a potential, check it, assign noise");
  auto a = std::make_shared<FitArgs>();
  CLI::App* cmd = sdot->add_subcommand("fit", "fit the dual potential g of N(0, I) -> data by stochastic ascent");
  add_target_options(cmd, a->target);
  add_table_options(cmd, a->given);
  cmd->add_option("--init", a->init, std::string(find_sdot_option("init")->help))->capture_default_str();
  cmd->add_option("--out", a->out, "output potential g: (N,) float32 .npy, centred")->required();
  cmd->add_option("--record", a->record, "output run record (options, history, result) as JSON");
  add_context_options(cmd, a->ctx);
  add_engine_options(cmd, a->opt.engine);
  cmd->callback([a] { run_fit(*a); });
}

struct CheckArgs {
  Target target;
  Context ctx;
  std::string potential, cost = "sqeuclidean_half";
  double epsilon = 0, class_penalty = std::numeric_limits<double>::infinity();
  int64_t draws = 65536, batch = 4096;
  bool allow_foreign = false;
  ScoreOptions engine;
};

// The check's figures in words, on stderr (docs/semidiscrete.md#reading-the-figures): the chi2 with its
// sd, the TV of the draws against its noise floor, and the bound on the true TV.
std::string check_summary(const SdotMarginalStats& st) {
  char buf[320];
  int k = std::snprintf(buf, sizeof buf, "%s; TV of the %lld draws %.3f", sdot_chi2_text(st.chi2, st.chi2_sd).c_str(),
                        static_cast<long long>(st.draws), st.tv);
  if (st.tv_floor) k += std::snprintf(buf + k, sizeof buf - k, " (noise floor of a perfect g: %.3f)", *st.tv_floor);
  if (st.tv_bound)
    std::snprintf(buf + k, sizeof buf - k, "; true TV <= %.3f (tv_bound = min(1, 0.5 sqrt(chi2 + 2 sd)), ~97.7%%)",
                  *st.tv_bound);
  return buf;
}

void register_check(CLI::App& root) {
  CLI::App* sdot = group(root, "sdot", "semidiscrete optimal transport: fit a potential, check it, assign noise");
  auto a = std::make_shared<CheckArgs>();
  CLI::App* cmd = sdot->add_subcommand(
      "check", "chi2 and TV of a potential's second marginal against b, from fresh noise; prints JSON");
  add_target_options(cmd, a->target);
  cmd->add_option("--potential", a->potential, "the potential g: (N,) .npy")->required();
  cmd->add_option("--epsilon", a->epsilon, "absolute epsilon of the map (0 = hard)")->capture_default_str();
  cmd->add_option("--cost", a->cost, "sqeuclidean_half | dot")->capture_default_str();
  cmd->add_option("--class-penalty", a->class_penalty, "labels: beta (default inf = per class)");
  cmd->add_flag("--allow-foreign-potential", a->allow_foreign,
                "use --potential even when its sidecar (g.npy.json) says it was fitted on other data, labels, weights or cost");
  cmd->add_option("--draws", a->draws, "noise draws (rounded up to a multiple of --batch)")->capture_default_str();
  cmd->add_option("--batch", a->batch, "draws per engine call")->capture_default_str();
  add_context_options(cmd, a->ctx);
  add_engine_options(cmd, a->engine);
  cmd->callback([a] {
    const Communicator& comm = a->ctx.communicator();  // checks agreed by every rank under mpirun
    SdotCost cost{};
    collectively(comm, [&] {
      require(a->draws >= 2, "--draws", a->draws, "at least 2");
      require(a->batch >= 2, "--batch", a->batch, "at least 2");
      a->ctx.validate();
      cost = parse_sdot_cost(a->cost, "--cost");
    });
    a->target.load(comm);
    collectively(comm, [&] {
      require_memory("--batch", std::min(a->batch, a->draws), rows_bytes(std::min(a->batch, a->draws), a->target.y.d, 32),
                     "a batch of noise rows of dimension " + std::to_string(a->target.y.d) + " (4 d + 32 bytes a row)");
    });
    const auto g = a->target.potential(a->potential, "--potential", comm);
    std::vector<float> basis;  // PCA-reduced matching: the basis the sidecar names
    collectively(comm, [&] { basis = read_potential_basis(a->potential, a->target.y.d, "--potential"); });
    SemidiscreteMap m(a->target.problem(cost, a->class_penalty), g, a->epsilon, basis);
    if (!a->allow_foreign) {
      const auto actual = a->target.meta(m.epsilon, m.cost, m.class_penalty, comm);  // sharded: rank 0's
      collectively(comm, [&] {
        if (comm.rank() == 0) check_potential_meta(a->potential, actual, "--potential");
      });
    }
    const int64_t batch = std::min(a->batch, a->draws);
    const int64_t repeats = (a->draws - 1) / batch + 1;  // draws + batch - 1 could overflow
    if (m.epsilon <= 0) sdot_prepare(m, a->ctx, a->engine);  // the int8 screen serves hard counts only
    const auto st = sdot_check(m, batch, repeats, a->ctx.seed, a->ctx, a->engine);
    if (comm.rank() != 0) return;
    std::cout << nlohmann::json{{"chi2", st.chi2},        {"tv", st.tv},
                                {"tv_floor", opt_json(st.tv_floor)},
                                {"chi2_sd", opt_json(st.chi2_sd)}, {"tv_bound", opt_json(st.tv_bound)},
                                {"min_ratio", st.min_ratio}, {"max_ratio", st.max_ratio},
                                {"empty", st.empty},      {"draws", st.draws},
                                {"int8_screen", sdot_int8_screen(m)},
                                {"engine", sdot_argmax_engine(m, a->engine)},
                                {"pca", m.pca_basis.empty() ? nlohmann::json(nullptr)
                                                            : nlohmann::json(basis.size() / a->target.y.d)}}
                     .dump()
              << "\n";
    if (!a->ctx.quiet) std::cerr << check_summary(st) << "\n";
  });
}

OTGEN_REGISTER_COMMAND("sdot fit", register_fit);
OTGEN_REGISTER_COMMAND("sdot check", register_check);

}  // namespace
}  // namespace otgen::cli
