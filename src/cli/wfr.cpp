// otgen wfr: run a WFR particle sampler on a named target and write x.npy, logw.npy, trace.json
// (and plot.png with --png).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "otgen/error.h"
#include "otgen/npy.h"
#include "otgen/record.h"
#include "otgen/rng.h"
#include "otgen/wfr.h"

// Static linkage: no symbol clash with another file that also includes the implementation.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

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
  double ess_threshold = 0.5;
  bool adaptive = false;
  bool ula_moves = false;
  int moves = 1;
  std::string out;
  bool png = false;
};

Points initial_points(const WfrArgs& a, const Target& t, const Context& ctx) {
  const int64_t n = a.particles, d = t.dim();
  Rng rng(ctx.seed, 0);  // stream 0: the start (steps use streams 1, 2, ...)
  if (a.init == "gaussian") {
    Points x(n, d);
    rng.fill_normal(std::span<float>(x.data));
    return x;
  }
  if (a.init.rfind("point:", 0) == 0) {
    const std::string v = a.init.substr(6);
    double p = 0;
    try {
      size_t used = 0;
      p = std::stod(v, &used);
      if (used != v.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail_argument("init", a.init, "point:<number>, gaussian or mode:<K>");
    }
    require(std::isfinite(p), "init", a.init, "a finite point");
    Points x(n, d);
    std::fill(x.data.begin(), x.data.end(), static_cast<float>(p));
    return x;
  }
  if (a.init.rfind("mode:", 0) == 0) {
    const auto* gm = dynamic_cast<const GaussianMixture*>(&t);
    require(gm != nullptr, "init", a.init, "mode:K only with a mixture target");
    int64_t k = 0;
    try {
      k = std::stoll(a.init.substr(5));
    } catch (const std::exception&) {
      fail_argument("init", a.init, "mode:<K> with K a component number");
    }
    require(k >= 1 && k <= gm->components(), "init", a.init,
            "mode:K with 1 <= K <= " + std::to_string(gm->components()));
    return gm->sample_component(k - 1, n, rng);
  }
  fail_argument("init", a.init, "point:<number>, gaussian or mode:<K>");
}

// ------------------------------------------------------------------------------------------ plots

struct Image {
  int w, h;
  std::vector<unsigned char> px;
  Image(int w_, int h_) : w(w_), h(h_), px(static_cast<size_t>(w_) * h_ * 3, 255) {}
  void set(int x, int y, unsigned char r, unsigned char g, unsigned char b) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    auto* p = &px[(static_cast<size_t>(y) * w + x) * 3];
    p[0] = r;
    p[1] = g;
    p[2] = b;
  }
};

void write_png(const std::string& path, const Image& img) {
  const std::string tmp = path + ".tmp";
  if (!stbi_write_png(tmp.c_str(), img.w, img.h, 3, img.px.data(), img.w * 3))
    throw Error("cannot write " + path);
  std::filesystem::rename(tmp, path);
}

void plot_1d(const std::string& path, const Target& t, const WeightedParticles& p) {
  const auto w = p.weights();
  float lo = *std::min_element(p.x.data.begin(), p.x.data.end());
  float hi = *std::max_element(p.x.data.begin(), p.x.data.end());
  if (dynamic_cast<const DoubleWell*>(&t)) {
    lo = std::min(lo, -2.0f);
    hi = std::max(hi, 2.0f);
  }
  const double pad = 0.1 * (hi - lo + 1e-3);
  const double a = lo - pad, b = hi + pad;
  const int W = 640, Hh = 320, bins = 80;
  std::vector<double> hist(bins, 0.0);
  for (int64_t i = 0; i < p.size(); ++i) {
    int k = static_cast<int>((p.x.row(i)[0] - a) / (b - a) * bins);
    hist[std::clamp(k, 0, bins - 1)] += w[i];
  }
  const double bw = (b - a) / bins;
  for (auto& v : hist) v /= bw;  // density
  // true density on a grid, normalised numerically
  std::vector<double> dens(W);
  std::vector<float> gx(W);
  for (int c = 0; c < W; ++c) gx[c] = static_cast<float>(a + (b - a) * (c + 0.5) / W);
  std::vector<double> lp(W);
  t.log_density({gx.data(), W, 1}, lp, {});
  const double mx = *std::max_element(lp.begin(), lp.end());
  double z = 0;
  for (int c = 0; c < W; ++c) z += (dens[c] = std::exp(lp[c] - mx)) * (b - a) / W;
  for (auto& v : dens) v /= z;
  const double top = 1.1 * std::max(*std::max_element(hist.begin(), hist.end()), *std::max_element(dens.begin(), dens.end()));
  Image img(W, Hh);
  for (int c = 0; c < W; ++c) {
    const int k = std::min(bins - 1, c * bins / W);
    const int bar = static_cast<int>(hist[k] / top * (Hh - 1));
    for (int y = 0; y < bar; ++y) img.set(c, Hh - 1 - y, 150, 170, 210);
    const int yd = static_cast<int>(dens[c] / top * (Hh - 1));
    for (int dy = -1; dy <= 1; ++dy) img.set(c, Hh - 1 - yd + dy, 200, 30, 30);
  }
  write_png(path, img);
}

void plot_2d(const std::string& path, const Target& t, const WeightedParticles& p) {
  const auto w = p.weights();
  double lo[2], hi[2];
  for (int a = 0; a < 2; ++a) {
    lo[a] = 1e30;
    hi[a] = -1e30;
    for (int64_t i = 0; i < p.size(); ++i) {
      lo[a] = std::min<double>(lo[a], p.x.row(i)[a]);
      hi[a] = std::max<double>(hi[a], p.x.row(i)[a]);
    }
    if (const auto* gm = dynamic_cast<const GaussianMixture*>(&t))
      for (int64_t k = 0; k < gm->components(); ++k) {
        lo[a] = std::min(lo[a], gm->mean(k)[a] - 3.0);
        hi[a] = std::max(hi[a], gm->mean(k)[a] + 3.0);
      }
    const double pad = 0.05 * (hi[a] - lo[a] + 1e-3);
    lo[a] -= pad;
    hi[a] += pad;
  }
  const int S = 480;
  Image img(S, S);
  std::vector<float> grid(static_cast<size_t>(S) * S * 2);
  for (int r = 0; r < S; ++r)
    for (int c = 0; c < S; ++c) {
      grid[(r * S + c) * 2] = static_cast<float>(lo[0] + (hi[0] - lo[0]) * (c + 0.5) / S);
      grid[(r * S + c) * 2 + 1] = static_cast<float>(hi[1] - (hi[1] - lo[1]) * (r + 0.5) / S);
    }
  std::vector<double> lp(static_cast<size_t>(S) * S);
  t.log_density({grid.data(), static_cast<int64_t>(S) * S, 2}, lp, {});
  const double mx = *std::max_element(lp.begin(), lp.end());
  for (int r = 0; r < S; ++r)
    for (int c = 0; c < S; ++c) {
      const double v = std::clamp((lp[r * S + c] - mx + 12.0) / 12.0, 0.0, 1.0);  // log scale, 12 nats
      img.set(c, r, static_cast<unsigned char>(255 - 120 * v), static_cast<unsigned char>(255 - 90 * v), 255);
    }
  const double wmax = *std::max_element(w.begin(), w.end());
  for (int64_t i = 0; i < p.size(); ++i) {
    const int c = static_cast<int>((p.x.row(i)[0] - lo[0]) / (hi[0] - lo[0]) * S);
    const int r = static_cast<int>((hi[1] - p.x.row(i)[1]) / (hi[1] - lo[1]) * S);
    const int rad = w[i] >= 0.25 * wmax ? 2 : 1;
    for (int dr = -rad; dr <= rad; ++dr)
      for (int dc = -rad; dc <= rad; ++dc) img.set(c + dc, r + dr, 200, 20, 20);
  }
  write_png(path, img);
}

void run_wfr(const WfrArgs& a, const Context& ctx) {
  ctx.validate();
  require(!a.out.empty(), "out", "empty", "an output folder");
  require(a.particles >= 2, "particles", a.particles, "at least 2 particles");
  require(a.step > 0 && std::isfinite(a.step), "step", a.step, "a positive finite step size");
  int64_t K = 0;
  if (a.steps) {
    require(!a.time, "time", *a.time, "either --time or --steps, not both");
    K = *a.steps;
  } else {
    require(a.time.has_value(), "steps", "missing", "--time T or --steps K");
    require(*a.time > 0 && std::isfinite(*a.time), "time", *a.time, "a positive finite time");
    K = static_cast<int64_t>(std::llround(*a.time / a.step));
  }
  require(K > 0, "steps", K, "a positive number of steps");
  auto target = make_target(a.target, a.H, a.dim);
  SamplerSpec spec;
  spec.step = a.step;
  spec.beta = a.beta;
  spec.bandwidth = a.bandwidth;
  if (a.bandwidth_rule == "silverman") spec.rule = BandwidthRule::Silverman;
  else if (a.bandwidth_rule == "scott") spec.rule = BandwidthRule::Scott;
  else fail_argument("bandwidth-rule", a.bandwidth_rule, "silverman or scott");
  spec.ess_threshold = a.ess_threshold;
  spec.resample = parse_resample_scheme(a.resample);
  spec.adaptive = a.adaptive;
  spec.mala_moves = !a.ula_moves;
  spec.moves = a.moves;
  auto sampler = make_sampler(a.sampler, spec);
  WeightedParticles start(initial_points(a, *target, ctx));
  RunOptions ro;
  ro.steps = K;
  const RunResult r = sampler->run(*target, start, ro, ctx);

  std::filesystem::create_directories(a.out);
  write_npy(a.out + "/x.npy", r.particles.x);
  std::vector<double> logw = r.particles.logw;
  if (!sampler->weighted()) std::fill(logw.begin(), logw.end(), 0.0);  // documented: zeros when unweighted
  write_npy(a.out + "/logw.npy", std::span<const double>(logw), {r.particles.size()});

  nlohmann::json doc = run_record("wfr", ctx);
  doc["options"] = {{"target", a.target}, {"H", a.H}, {"sampler", a.sampler}, {"particles", a.particles},
                    {"step", a.step}, {"steps", K}, {"init", a.init}, {"resample", a.resample},
                    {"beta", a.beta}, {"ess_threshold", a.ess_threshold}, {"adaptive", a.adaptive}, {"moves", a.moves}};
  if (a.bandwidth) doc["options"]["bandwidth"] = *a.bandwidth;
  else doc["options"]["bandwidth_rule"] = a.bandwidth_rule;
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : r.trace) {
    nlohmann::json j = {{"step", s.step}, {"time", s.time}, {"ess", s.ess}, {"resampled", s.resampled},
                        {"grad_evals", s.grad_evals}, {"seconds", s.seconds}};
    if (s.log_z) j["log_z"] = *s.log_z;
    if (s.lambda) j["lambda"] = *s.lambda;
    if (s.acceptance) j["acceptance"] = *s.acceptance;
    if (s.bandwidth) j["bandwidth"] = *s.bandwidth;
    if (s.jumps) j["jumps"] = *s.jumps;
    steps.push_back(std::move(j));
  }
  doc["trace"] = std::move(steps);
  nlohmann::json summary = {{"termination", termination_name(r.termination)}, {"message", r.message},
                            {"steps", r.steps}, {"resamplings", r.resamplings}, {"grad_evals", r.grad_evals},
                            {"seconds", r.seconds}, {"ess", r.particles.ess()}};
  if (r.log_z) summary["log_z"] = *r.log_z;
  if (const auto* dw = dynamic_cast<const DoubleWell*>(target.get())) {
    const auto w = r.particles.weights();
    double left = 0;
    for (int64_t i = 0; i < r.particles.size(); ++i)
      if (r.particles.x.row(i)[0] < dw->barrier()) left += w[i];
    summary["left_well_mass"] = left;
    summary["left_well_mass_exact"] = dw->left_well_mass();
  }
  doc["summary"] = summary;
  write_json(a.out + "/trace.json", doc);
  if (a.png) {
    if (target->dim() == 1) plot_1d(a.out + "/plot.png", *target, r.particles);
    else if (target->dim() == 2) plot_2d(a.out + "/plot.png", *target, r.particles);
    else fail_argument("png", "dimension " + std::to_string(target->dim()), "a 1-D or 2-D target");
  }
  if (!ctx.quiet) {
    std::printf("%s on %s: %lld steps, ESS %.1f, %lld resamplings, %.3f s", a.sampler.c_str(),
                target->name().c_str(), static_cast<long long>(r.steps), r.particles.ess(),
                static_cast<long long>(r.resamplings), r.seconds);
    if (summary.contains("left_well_mass"))
      std::printf(", left-well mass %.4f (exact %.4f)", summary["left_well_mass"].get<double>(),
                  summary["left_well_mass_exact"].get<double>());
    if (r.log_z) std::printf(", log Z %.4f", *r.log_z);
    std::printf("\n");
  }
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
  cmd->add_option("--ess-threshold", args->ess_threshold, "resample when ESS < threshold * N")->capture_default_str();
  cmd->add_flag("--adaptive", args->adaptive, "tempered SMC: adaptive schedule (bisection on ESS)");
  cmd->add_flag("--ula-moves", args->ula_moves, "tempered SMC: ULA moves instead of MALA");
  cmd->add_option("--moves", args->moves, "tempered SMC: MCMC moves per step")->capture_default_str();
  cmd->add_option("--out", args->out, "output folder (x.npy, logw.npy, trace.json)")->required();
  cmd->add_flag("--png", args->png, "also draw plot.png: histogram (1-D) or scatter (2-D) over the true density");
  add_context_options(cmd, *ctx);
  cmd->callback([args, ctx] { run_wfr(*args, *ctx); });
}

OTGEN_REGISTER_COMMAND("wfr", register_wfr);

}  // namespace
}  // namespace otgen::cli
