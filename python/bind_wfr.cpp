// The wfr layer in Python: the WFR samplers (otgen/wfr/wfr.h) on a built-in target or a Python one.
#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bindings.h"
#include "otgen/wfr/wfr.h"

using namespace otgen;

namespace otgen::bindings {

namespace {

// target: a built-in name, or a Python object with batched log_prob(x) -> (n,) and grad_log_prob(x)
// -> (n, d) taking float64 (n, d) arrays (called with the GIL held, once per step).
std::unique_ptr<wfr::Target> python_target(py::object target, int64_t dim, double H) {
  if (py::isinstance<py::str>(target)) return wfr::make_target(target.cast<std::string>(), H, dim);
  if (!py::hasattr(target, "log_prob") || !py::hasattr(target, "grad_log_prob"))
    value_error("target: expected a built-in name or an object with log_prob(x) and grad_log_prob(x)");
  if (dim < 1) value_error("dim: " + std::to_string(dim) + ", expected the target's dimension (>= 1)");
  return std::make_unique<wfr::FunctionTarget>(
      dim,
      [target, dim](PointsView x, std::span<double> logp, std::span<double> grad) {
        py::gil_scoped_acquire acquire;
        py::array_t<double> xa({x.n, dim});
        for (int64_t k = 0; k < x.n * dim; ++k) xa.mutable_data()[k] = x.data[k];
        auto lp = F64::ensure(target.attr("log_prob")(xa));
        if (!lp || lp.size() != x.n)
          value_error("target.log_prob(x) must return n = " + std::to_string(x.n) + " values");
        std::copy_n(lp.data(), x.n, logp.begin());
        if (!grad.empty()) {
          auto gr = F64::ensure(target.attr("grad_log_prob")(xa));
          if (!gr || gr.size() != x.n * dim)
            value_error("target.grad_log_prob(x) must return an (n, d) = (" + std::to_string(x.n) + ", " +
                        std::to_string(dim) + ") array");
          std::copy_n(gr.data(), x.n * dim, grad.begin());
        }
      },
      "python");
}

// The sampler's options of wfr_sample; None: the sampler's default (and not "given").
struct SamplerArgs {
  double step;
  std::optional<double> beta, bandwidth;
  std::optional<std::string> bandwidth_rule;
  std::optional<double> ess_threshold;
  std::optional<std::string> resample;
  std::optional<bool> adaptive, mala_moves;
  std::optional<int> moves;
};

std::unique_ptr<wfr::Sampler> python_sampler(const std::string& sampler, const SamplerArgs& a) {
  wfr::SamplerSpec spec;
  spec.step = a.step, spec.beta = a.beta.value_or(spec.beta), spec.bandwidth = a.bandwidth;
  spec.ess_threshold = a.ess_threshold, spec.adaptive = a.adaptive.value_or(spec.adaptive);
  spec.mala_moves = a.mala_moves.value_or(spec.mala_moves), spec.moves = a.moves.value_or(spec.moves);
  const std::string rule = a.bandwidth_rule.value_or("silverman");
  if (rule == "silverman") spec.rule = wfr::BandwidthRule::Silverman;
  else if (rule == "scott") spec.rule = wfr::BandwidthRule::Scott;
  else value_error("bandwidth_rule: '" + rule + "', expected 'silverman' or 'scott'");
  spec.resample = wfr::parse_resample_scheme(a.resample.value_or("systematic"), "resample");
  auto s = wfr::make_sampler(sampler, spec);
  std::vector<std::string_view> given;
  for (auto [set, field] : {std::pair{a.beta.has_value(), "beta"}, {a.bandwidth.has_value(), "bandwidth"},
                            {a.bandwidth_rule.has_value(), "bandwidth_rule"},
                            {a.ess_threshold.has_value(), "ess_threshold"}, {a.resample.has_value(), "resample"},
                            {a.adaptive.has_value(), "adaptive"}, {a.mala_moves.has_value(), "mala_moves"},
                            {a.moves.has_value(), "moves"}})
    if (set) given.push_back(field);
  wfr::require_sampler_options(sampler, given);
  return s;
}

// init: a built-in initialisation name or an (n, d) array in the target's dimension.
Points initial_points(py::object init, const wfr::Target& t, int64_t n_particles, uint64_t seed) {
  if (py::isinstance<py::str>(init)) return wfr::initial_particles(t, init.cast<std::string>(), n_particles, seed);
  auto X0 = points(init, "init");
  if (X0.view.d != t.dim())
    value_error("init: dimension " + std::to_string(X0.view.d) + ", expected the target's " + std::to_string(t.dim()));
  return Points(std::vector<float>(X0.view.data, X0.view.data + X0.view.n * X0.view.d), X0.view.n, X0.view.d);
}

// The per-step trace of a run as a dict of 1-D arrays.
py::dict wfr_trace(const wfr::RunResult& r) {
  const auto rows = static_cast<py::ssize_t>(r.trace.size());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> time(rows), ess(rows), secs(rows), log_z(rows), lambda(rows);
  std::vector<int64_t> resampled(rows), grads(rows);
  for (py::ssize_t k = 0; k < rows; ++k) {
    const auto& e = r.trace[k];
    time[k] = e.time, ess[k] = e.ess, secs[k] = e.seconds, resampled[k] = e.resampled, grads[k] = e.grad_evals;
    log_z[k] = e.log_z.value_or(nan), lambda[k] = e.lambda.value_or(nan);
  }
  py::dict trace;
  trace["time"] = owned(std::move(time), {rows});
  trace["ess"] = owned(std::move(ess), {rows});
  trace["resampled"] = owned(std::move(resampled), {rows});
  trace["grad_evals"] = owned(std::move(grads), {rows});
  trace["seconds"] = owned(std::move(secs), {rows});
  trace["log_z"] = owned(std::move(log_z), {rows});
  trace["lambda"] = owned(std::move(lambda), {rows});
  return trace;
}

py::dict wfr_result(wfr::RunResult&& r) {
  py::dict trace = wfr_trace(r);
  py::dict out;
  const auto n = r.particles.x.n, d = r.particles.x.d;
  out["x"] = owned(std::move(r.particles.x.data), {n, d});
  out["logw"] = owned(std::move(r.particles.logw), {n});
  out["trace"] = trace;
  out["steps"] = r.steps;
  out["resamplings"] = r.resamplings;
  out["grad_evals"] = r.grad_evals;
  out["seconds"] = r.seconds;
  out["log_z"] = optional_value(r.log_z);
  out["termination"] = termination_name(r.termination);
  out["message"] = r.message;
  return out;
}

py::dict py_wfr_sample(py::object target, int64_t dim, double H, const std::string& sampler, int64_t n_particles,
                       double step, int64_t steps, py::object init, std::optional<double> beta,
                       std::optional<double> bandwidth, std::optional<std::string> bandwidth_rule,
                       std::optional<double> ess_threshold, std::optional<std::string> resample,
                       std::optional<bool> adaptive, std::optional<bool> mala_moves, std::optional<int> moves,
                       uint64_t seed, int threads, bool progress, py::object callback) {
  std::unique_ptr<wfr::Target> t = python_target(target, dim, H);
  auto s = python_sampler(sampler, {step, beta, bandwidth, std::move(bandwidth_rule), ess_threshold,
                                    std::move(resample), adaptive, mala_moves, moves});
  Context ctx = context(threads, seed);
  Points x0 = initial_points(init, *t, n_particles, seed);
  wfr::RunOptions run;
  run.steps = steps;
  run.progress_bar = progress;
  ctx.quiet = !progress;
  ctx.on_progress = python_progress(callback);
  wfr::RunResult r;
  {
    py::gil_scoped_release release;
    r = s->run(*t, wfr::WeightedParticles(std::move(x0)), run, ctx);
  }
  return wfr_result(std::move(r));
}

double py_double_well_left_mass(py::handle x, py::object logw, double H, double tilt) {
  const PointsArg xs = points(x, "x");
  const F64 lw = optional_f64(logw, "logw");
  if (lw.size() != xs.view.n)
    value_error("logw: expected " + std::to_string(xs.view.n) + " log-weights (one per row of x), got " +
                std::to_string(lw.size()));
  const auto* x0 = xs.view.data;
  wfr::WeightedParticles p(Points(std::vector<float>(x0, x0 + xs.view.n * xs.view.d), xs.view.n, xs.view.d));
  p.logw.assign(lw.data(), lw.data() + lw.size());
  return wfr::DoubleWell(H, tilt).mass_left_of_barrier(p);
}

}  // namespace

void bind_wfr(py::module_& m) {
  m.def("wfr_sample", &py_wfr_sample, py::arg("target"), py::arg("dim") = 1, py::arg("H") = 6.0,
        py::arg("sampler") = "smc-wfr", py::arg("n_particles") = 300, py::arg("step") = 0.005, py::arg("steps") = 1000,
        py::arg("init") = "gaussian", py::arg("beta") = py::none(), py::arg("bandwidth") = py::none(),
        py::arg("bandwidth_rule") = py::none(), py::arg("ess_threshold") = py::none(), py::arg("resample") = py::none(),
        py::arg("adaptive") = py::none(), py::arg("mala_moves") = py::none(), py::arg("moves") = py::none(),
        py::arg("seed") = 0, py::arg("threads") = 0, py::arg("progress") = false, py::arg("callback") = py::none());
  m.def("double_well_left_mass", &py_double_well_left_mass, py::arg("x"), py::arg("logw"), py::arg("H") = 6.0,
        py::arg("tilt") = 0.5,
        "Weighted mass of particles x (N, 1) with log-weights logw (N,) left of the barrier top of the double well "
        "V = H (x^2 - 1)^2 + tilt x (DoubleWell::mass_left_of_barrier).");
}

}  // namespace otgen::bindings
