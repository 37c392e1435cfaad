// otgen wfr: run a WFR particle sampler on a named target and write x.npy, logw.npy, trace.json
// (and plot.png with --png).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/chart.h"
#include "cli/plot.h"
#include "otgen/core/error.h"
#include "otgen/core/npy.h"
#include "otgen/core/record.h"
#include "otgen/core/rng.h"
#include "otgen/wfr/wfr.h"

namespace otgen::cli {
namespace {

using namespace otgen::wfr;

struct WfrArgs {
  std::string target = "doublewell";
  double H = 6.0;
  int64_t dim = 1;
  std::string sampler;
  int64_t particles = 300;
  double step = 0.005;
  std::optional<double> time;
  std::optional<int64_t> steps;
  std::string init = "gaussian";
  std::string resample = "systematic";
  double beta = 1.0;
  std::optional<double> bandwidth;
  std::string bandwidth_rule = "silverman";
  std::optional<double> ess_threshold;  // empty: the sampler's default
  bool adaptive = false;
  bool ula_moves = false;
  int moves = 1;
  std::string out;
  bool png = false;
  std::vector<std::string_view> given;  // the SamplerSpec fields whose options were typed
};

// ------------------------------------------------------------------------------------------ plots

// Histogram of the weighted particles (as a density) under the target's density, normalised numerically.
void plot_1d(const std::string& path, const Target& t, const WeightedParticles& p, const std::string& title) {
  const auto w = p.weights();
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const float v : p.x.data)
    if (std::isfinite(v)) {
      lo = std::min<double>(lo, v);
      hi = std::max<double>(hi, v);
    }
  if (!(lo <= hi)) lo = hi = 0;  // no finite particle
  if (dynamic_cast<const DoubleWell*>(&t)) {
    lo = std::min(lo, -2.0);
    hi = std::max(hi, 2.0);
  }
  const double pad = 0.1 * (hi - lo + 1e-3);
  const double a = lo - pad, b = hi + pad;
  const int bins = 80, grid = 640;
  ChartSeries hist{"particles (weighted histogram)", {}, std::vector<double>(bins, 0.0), {}, {}, {150, 170, 210}};
  hist.histogram = true;
  for (int k = 0; k <= bins; ++k) hist.x.push_back(a + (b - a) * k / bins);
  const double bw = (b - a) / bins;
  for (int64_t i = 0; i < p.size(); ++i) {
    const float x = p.x.row(i)[0];
    if (!std::isfinite(x)) continue;
    const int k = static_cast<int>((x - a) / bw);
    hist.y[std::clamp(k, 0, bins - 1)] += w[i] / bw;  // density
  }
  std::vector<float> gx(grid);
  for (int c = 0; c < grid; ++c) gx[c] = static_cast<float>(a + (b - a) * (c + 0.5) / grid);
  std::vector<double> lp(grid);
  t.log_density({gx.data(), grid, 1}, lp, {});
  const double mx = *std::max_element(lp.begin(), lp.end());
  double z = 0;
  for (const double v : lp) z += std::exp(v - mx) * (b - a) / grid;
  ChartSeries dens{"target density", {}, {}, {}, {}, {200, 30, 30}, true, 1.0, 2.0};
  for (int c = 0; c < grid; ++c) {
    dens.x.push_back(gx[c]);
    dens.y.push_back(std::exp(lp[c] - mx) / z);
  }
  ChartOptions opt;
  opt.chart_width = 720;
  opt.chart_height = 400;
  write_charts(path, {Chart{title, "x", "density", ChartKind::Points, false, false, {hist, dens}}}, opt);
}

// Particles over the target's log density (12 nats of colour range); particles with weight below a
// quarter of the largest are drawn smaller.
void plot_2d(const std::string& path, const Target& t, const WeightedParticles& p, const std::string& title) {
  const auto w = p.weights();
  double lo[2], hi[2];
  for (int a = 0; a < 2; ++a) {
    lo[a] = std::numeric_limits<double>::infinity();
    hi[a] = -lo[a];
    for (int64_t i = 0; i < p.size(); ++i)
      if (std::isfinite(p.x.row(i)[0]) && std::isfinite(p.x.row(i)[1])) {
        lo[a] = std::min<double>(lo[a], p.x.row(i)[a]);
        hi[a] = std::max<double>(hi[a], p.x.row(i)[a]);
      }
    if (const auto* gm = dynamic_cast<const GaussianMixture*>(&t))
      for (int64_t k = 0; k < gm->components(); ++k) {
        lo[a] = std::min(lo[a], gm->mean(k)[a] - 3.0);
        hi[a] = std::max(hi[a], gm->mean(k)[a] + 3.0);
      }
    if (!(lo[a] < hi[a])) {  // no finite particle, or all on one line
      const double c = lo[a] <= hi[a] ? lo[a] : 0.0;
      lo[a] = c - 1.0;
      hi[a] = c + 1.0;
    }
    const double pad = 0.05 * (hi[a] - lo[a]);
    lo[a] -= pad;
    hi[a] += pad;
  }
  const Limits lim{lo[0], hi[0], lo[1], hi[1]};
  double wmax = 0;
  for (const double v : w) wmax = std::max(wmax, v);
  std::vector<float> hv, lv;
  for (int64_t i = 0; i < p.size(); ++i) {
    auto& dst = w[i] >= 0.25 * wmax ? hv : lv;
    dst.insert(dst.end(), p.x.row(i), p.x.row(i) + 2);
  }
  const int64_t nh = static_cast<int64_t>(hv.size() / 2), nl = static_cast<int64_t>(lv.size() / 2);
  const Points heavy(std::move(hv), nh, 2), light(std::move(lv), nl, 2);
  Chart chart{title, "x1", "x2", ChartKind::Points, false, false, {}};
  chart.limits = lim;
  ChartField field;
  field.eval = [&t](PointsView xy) {
    std::vector<double> lp(static_cast<size_t>(xy.n));
    t.log_density(xy, lp, {});
    return lp;
  };
  field.span = 12.0;
  field.label = "target log density (12 nats)";
  chart.field = std::move(field);
  const Rgb red{200, 20, 20};
  if (heavy.n > 0) chart.series.push_back(points_series(heavy.view(), "particles", red, 1.0, "particles"));
  if (light.n > 0) {
    chart.series.push_back(points_series(light.view(), "particles, weight < max / 4", red, 1.0, "particles"));
    chart.series.back().size = 0.5;
  }
  ChartOptions opt;
  opt.chart_width = 560;
  opt.chart_height = 540;
  write_charts(path, {chart}, opt);
}

// ------------------------------------------------------------------------------------------ run

// The number of steps K: --steps, or --time / --step rounded.
int64_t step_count(const WfrArgs& a) {
  int64_t K = 0;
  if (a.steps) {
    require(!a.time, "--time", *a.time, "either --time or --steps, not both");
    K = *a.steps;
  } else {
    require(a.time.has_value(), "--steps", "missing", "--time T or --steps K");
    require(*a.time > 0 && std::isfinite(*a.time), "--time", *a.time, "a positive finite time");
    K = static_cast<int64_t>(std::llround(*a.time / a.step));
  }
  require(K > 0, "--steps", K, "a positive number of steps");
  return K;
}

SamplerSpec sampler_spec(const WfrArgs& a) {
  SamplerSpec spec;
  spec.step = a.step;
  spec.beta = a.beta;
  spec.bandwidth = a.bandwidth;
  if (a.bandwidth_rule == "silverman") spec.rule = BandwidthRule::Silverman;
  else if (a.bandwidth_rule == "scott") spec.rule = BandwidthRule::Scott;
  else fail_argument("--bandwidth-rule", a.bandwidth_rule, "silverman or scott");
  spec.ess_threshold = a.ess_threshold;
  spec.resample = parse_resample_scheme(a.resample);
  spec.adaptive = a.adaptive;
  spec.mala_moves = !a.ula_moves;
  spec.moves = a.moves;
  return spec;
}

nlohmann::json options_json(const WfrArgs& a, int64_t K) {
  nlohmann::json o = {{"target", a.target}, {"H", a.H}, {"sampler", a.sampler}, {"particles", a.particles},
                      {"step", a.step}, {"steps", K}, {"init", a.init}, {"resample", a.resample},
                      {"beta", a.beta}, {"adaptive", a.adaptive}, {"moves", a.moves},
                      {"ess_threshold", a.ess_threshold ? nlohmann::json(*a.ess_threshold) : nlohmann::json(nullptr)}};
  if (a.bandwidth) o["bandwidth"] = *a.bandwidth;
  else o["bandwidth_rule"] = a.bandwidth_rule;
  return o;
}

nlohmann::json trace_json(const std::vector<StepRecord>& trace) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : trace) {
    nlohmann::json j = {{"step", s.step}, {"time", s.time}, {"ess", s.ess}, {"resampled", s.resampled},
                        {"grad_evals", s.grad_evals}, {"seconds", s.seconds}};
    if (s.log_z) j["log_z"] = *s.log_z;
    if (s.lambda) j["lambda"] = *s.lambda;
    if (s.acceptance) j["acceptance"] = *s.acceptance;
    if (s.bandwidth) j["bandwidth"] = *s.bandwidth;
    if (s.jumps) j["jumps"] = *s.jumps;
    steps.push_back(std::move(j));
  }
  return steps;
}

// The run's figures (trace.json's summary); the double well adds its left-well mass, estimated and exact.
nlohmann::json summary_json(const RunResult& r, const Target& target) {
  nlohmann::json summary = {{"termination", termination_name(r.termination)}, {"message", r.message},
                            {"steps", r.steps}, {"resamplings", r.resamplings}, {"grad_evals", r.grad_evals},
                            {"seconds", r.seconds}, {"ess", r.particles.ess()}};
  if (r.log_z) summary["log_z"] = *r.log_z;
  if (const auto* dw = dynamic_cast<const DoubleWell*>(&target)) {
    summary["left_well_mass"] = dw->mass_left_of_barrier(r.particles);
    summary["left_well_mass_exact"] = dw->left_well_mass();
  }
  return summary;
}

// x.npy, logw.npy (zeros when the sampler is unweighted) and trace.json; returns trace.json's summary.
nlohmann::json write_run(const WfrArgs& a, const Context& ctx, const Target& target, const RunResult& r, bool weighted,
                         int64_t K) {
  prepare_output_folder(a.out, "--out");
  write_npy(a.out + "/x.npy", r.particles.x);
  std::vector<double> logw = r.particles.logw;
  if (!weighted) std::fill(logw.begin(), logw.end(), 0.0);  // documented: zeros when unweighted
  write_npy(a.out + "/logw.npy", std::span<const double>(logw), {r.particles.size()});
  nlohmann::json doc = run_record("wfr", ctx);
  doc["options"] = options_json(a, K);
  doc["trace"] = trace_json(r.trace);
  const nlohmann::json summary = summary_json(r, target);
  doc["summary"] = summary;
  write_json(a.out + "/trace.json", doc);
  return summary;
}

// --png: plot.png, a histogram (1-D) or a scatter (2-D) over the target's density.
void write_plot(const WfrArgs& a, const Target& target, const RunResult& r) {
  char head[160];
  std::snprintf(head, sizeof head, "%s on %s: N = %lld, %lld steps, ESS %.1f", a.sampler.c_str(),
                target.name().c_str(), static_cast<long long>(r.particles.size()), static_cast<long long>(r.steps),
                r.particles.ess());
  if (target.dim() == 1) plot_1d(a.out + "/plot.png", target, r.particles, head);
  else plot_2d(a.out + "/plot.png", target, r.particles, head);
}

// The one-line report on stdout (unless --quiet).
void print_summary(const WfrArgs& a, const Target& target, const RunResult& r, const nlohmann::json& summary) {
  std::printf("%s on %s: %lld steps, ESS %.1f, %lld resamplings, %.3f s", a.sampler.c_str(), target.name().c_str(),
              static_cast<long long>(r.steps), r.particles.ess(), static_cast<long long>(r.resamplings), r.seconds);
  if (summary.contains("left_well_mass"))
    std::printf(", left-well mass %.4f (exact %.4f)", summary["left_well_mass"].get<double>(),
                summary["left_well_mass_exact"].get<double>());
  if (r.log_z) std::printf(", log Z %.4f", *r.log_z);
  std::printf("\n");
}

void run_wfr(const WfrArgs& a, const Context& ctx) {
  ctx.validate();
  require(!a.out.empty(), "--out", "empty", "an output folder");
  require(a.particles >= 2, "--particles", a.particles, "at least 2 particles");
  require(a.step > 0 && std::isfinite(a.step), "--step", a.step, "a positive finite step size");
  const int64_t K = step_count(a);
  auto target = make_target(a.target, a.H, a.dim);
  const SamplerSpec spec = sampler_spec(a);
  if (a.png && target->dim() > 2)
    fail_argument("--png", "dimension " + std::to_string(target->dim()), "a 1-D or 2-D target");
  auto sampler = make_sampler(a.sampler, spec);
  require_sampler_options(a.sampler, a.given);
  require_output_folder(a.out, "--out");
  WeightedParticles start(initial_particles(*target, a.init, a.particles, ctx.seed));
  RunOptions ro;
  ro.steps = K;
  const RunResult r = sampler->run(*target, start, ro, ctx);
  const nlohmann::json summary = write_run(a, ctx, *target, r, sampler->weighted(), K);
  if (a.png) write_plot(a, *target, r);
  if (!ctx.quiet) print_summary(a, *target, r, summary);
}

void register_wfr(CLI::App& root) {
  auto args = std::make_shared<WfrArgs>();
  auto ctx = std::make_shared<Context>();
  CLI::App* cmd = root.add_subcommand("wfr", "Wasserstein-Fisher-Rao particle samplers (ULA, MALA, birth-death, "
                                             "weighted WFR, SMC-WFR, tempered SMC)");
  cmd->add_option("--target", args->target, "doublewell | gaussian | mixture4-lln | mixture4-cp | mixture20d")
      ->capture_default_str();
  cmd->add_option("--H", args->H, "double-well barrier height H in V = H (x^2-1)^2 + 0.5 x")->capture_default_str();
  cmd->add_option("--dim", args->dim, "dimension of the gaussian target")->capture_default_str();
  cmd->add_option("--sampler", args->sampler, "ula | mala | birth-death | wfr | smc-wfr | tempered-smc")->required();
  cmd->add_option("--particles,-n", args->particles, "number of particles N (>= 2)")->capture_default_str();
  cmd->add_option("--step", args->step, "step size dt (gamma for SMC-WFR)")->capture_default_str();
  cmd->add_option("--time", args->time, "final time T (steps = T / dt)");
  cmd->add_option("--steps", args->steps, "number of steps K");
  cmd->add_option("--init", args->init, "point:<x> | gaussian | mode:<K> (1-based mixture component)")
      ->capture_default_str();
  cmd->add_option("--resample", args->resample, "multinomial | stratified | systematic | residual")
      ->capture_default_str();
  cmd->add_option("--beta", args->beta, "reaction strength (birth-death, wfr)")->capture_default_str();
  cmd->add_option("--bandwidth", args->bandwidth, "fixed KDE bandwidth h (default: by rule, every step)");
  cmd->add_option("--bandwidth-rule", args->bandwidth_rule, "silverman | scott")->capture_default_str();
  cmd->add_option("--ess-threshold", args->ess_threshold, "resample when ESS < threshold * N (default 0.5; smc-wfr: every step unless given)");
  cmd->add_flag("--adaptive", args->adaptive, "tempered SMC: adaptive schedule (bisection on ESS)");
  cmd->add_flag("--ula-moves", args->ula_moves, "tempered SMC: ULA moves instead of MALA");
  cmd->add_option("--moves", args->moves, "tempered SMC: MCMC moves per step")->capture_default_str();
  cmd->add_option("--out", args->out, "output folder (x.npy, logw.npy, trace.json)")->required();
  cmd->add_flag("--png", args->png, "also draw plot.png: histogram (1-D) or scatter (2-D) over the true density");
  add_context_options(cmd, *ctx);
  cmd->callback([cmd, args, ctx] {
    static constexpr std::pair<const char*, std::string_view> kFields[] = {
        {"--beta", "beta"},         {"--bandwidth", "bandwidth"}, {"--bandwidth-rule", "bandwidth_rule"},
        {"--ess-threshold", "ess_threshold"}, {"--resample", "resample"}, {"--adaptive", "adaptive"},
        {"--ula-moves", "mala_moves"}, {"--moves", "moves"}};
    for (const auto& [flag, field] : kFields)
      if (cmd->count(flag) > 0) args->given.push_back(field);
    run_wfr(*args, *ctx);
  });
}

OTGEN_REGISTER_COMMAND("wfr", register_wfr);

}  // namespace
}  // namespace otgen::cli
