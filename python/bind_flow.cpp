// The weighted SDEs on flow fields in Python (otgen/wfr/flow_sde.h, the wfr layer's; what otgen.flow calls):
// the FlowField class, the exact Gaussian-mixture field and flow_sde on a FlowField or a Python field.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bindings.h"
#include "otgen/wfr/flow_sde.h"
#include "otgen/wfr/wfr.h"

using namespace otgen;

namespace otgen::bindings {

namespace {

FlowFieldFn py_gaussian_mixture_field(py::object means, py::object weights, py::object stds, py::object cond_weights) {
  auto mu = points(means, "means");
  const F64 w = optional_f64(weights, "weights"), s = optional_f64(stds, "stds");
  const F64 cw = optional_f64(cond_weights, "cond_weights");
  std::vector<double> m(mu.view.data, mu.view.data + mu.view.n * mu.view.d);
  return gaussian_mixture_field(m, {w.data(), w.data() + w.size()}, {s.data(), s.data() + s.size()}, mu.view.d,
                                {cw.data(), cw.data() + cw.size()});
}

// field: a FlowField, or a Python callable field(t, x, divergence, guidance) -> dict with "v" (or
// "v_cond" and "v_null"), optional "div" and "nfe" (called with the GIL held).
FlowFieldFn python_field(py::object field, int64_t dim) {
  if (py::isinstance<FlowFieldFn>(field)) return field.cast<FlowFieldFn>();
  if (!PyCallable_Check(field.ptr())) value_error("field: expected a FlowField or a callable");
  return [field, dim](double t, PointsView x, const FlowFieldRequest& req, FlowFieldValues& out) -> int64_t {
    py::gil_scoped_acquire acquire;
    py::array_t<float> xa({x.n, dim});
    std::copy_n(x.data, x.n * dim, xa.mutable_data());
    py::dict r = field(t, xa, req.divergence, req.guidance);
    auto take = [&](const char* key, std::vector<float>& dst) {
      if (!r.contains(key)) value_error(std::string("field: the result has no '") + key + "'");
      auto a = F32::ensure(r[key]);
      if (!a || a.size() != x.n * dim)
        value_error(std::string("field: '") + key + "' must be an (n, d) = (" + std::to_string(x.n) + ", " +
                    std::to_string(dim) + ") array");
      dst.assign(a.data(), a.data() + a.size());
    };
    if (req.guidance) take("v_cond", out.v_cond), take("v_null", out.v_null);
    else take("v", out.v);
    if (req.divergence) {
      if (!r.contains("div")) value_error("field: the result has no 'div' (a temperature needs it)");
      auto a = F64::ensure(r["div"]);
      if (!a || a.size() != x.n) value_error("field: 'div' must have n = " + std::to_string(x.n) + " values");
      out.div.assign(a.data(), a.data() + a.size());
    }
    return r.contains("nfe") ? r["nfe"].cast<int64_t>() : 1;
  };
}

// The log-reward of flow_sde: a Python callable log_reward(x) -> (r, grad, laplacian), a built-in tilt
// spec (otgen/wfr/flow_sde.h), or none (empty).
LogRewardFn python_reward(py::object reward, const std::string& tilt, int64_t dim) {
  if (reward.is_none()) return tilt.empty() ? LogRewardFn() : parse_log_reward(tilt, dim, "tilt");
  if (!tilt.empty()) value_error("tilt: given with log_reward, expected one of them");
  if (!PyCallable_Check(reward.ptr())) value_error("log_reward: expected a callable");
  return [reward, dim](PointsView x, std::span<double> r, std::span<double> grad, std::span<double> lap) {
    py::gil_scoped_acquire acquire;
    py::array_t<double> xa({x.n, dim});
    for (int64_t k = 0; k < x.n * dim; ++k) xa.mutable_data()[k] = x.data[k];
    py::object res = reward(xa);
    if (!py::isinstance<py::tuple>(res) || py::len(res) != 3)
      value_error("log_reward: must return (r, grad, laplacian)");
    py::tuple t = res;
    auto copy = [&](int i, std::span<double> dst, const char* what, int64_t size) {
      auto a = F64::ensure(t[i]);
      if (!a || a.size() != size)
        value_error(std::string("log_reward: ") + what + " must have " + std::to_string(size) + " values");
      std::copy_n(a.data(), size, dst.begin());
      for (double v : dst)
        if (!std::isfinite(v)) value_error(std::string("log_reward: ") + what + " has a non-finite value");
    };
    copy(0, r, "r", x.n);
    copy(1, grad, "grad", x.n * dim);
    copy(2, lap, "laplacian", x.n);
  };
}

// A run of flow_sde as its dict; log_z only for a weighted run.
py::dict flow_sde_result(FlowSdeResult&& r, bool weighted) {
  const auto rows = static_cast<py::ssize_t>(r.trace.size());
  std::vector<double> t(rows), ess(rows), log_z(rows);
  std::vector<int64_t> resampled(rows), nfe(rows);
  for (py::ssize_t k = 0; k < rows; ++k) {
    const auto& e = r.trace[k];
    t[k] = e.t, ess[k] = e.ess, log_z[k] = e.log_z, resampled[k] = e.resampled, nfe[k] = e.nfe;
  }
  py::dict trace;
  trace["t"] = owned(std::move(t), {rows});
  trace["ess"] = owned(std::move(ess), {rows});
  trace["log_z"] = owned(std::move(log_z), {rows});
  trace["resampled"] = owned(std::move(resampled), {rows});
  trace["nfe"] = owned(std::move(nfe), {rows});
  py::dict out;
  const auto nn = r.particles.x.n, d = r.particles.x.d;
  out["x"] = owned(std::move(r.particles.x.data), {nn, d});
  out["logw"] = owned(std::move(r.particles.logw), {nn});
  out["log_z"] = weighted ? py::object(py::float_(r.log_z)) : py::none();
  out["final_ess"] = r.final_ess;
  out["nfe"] = r.nfe;
  out["resamples"] = r.resamples;
  out["trace"] = trace;
  return out;
}

py::dict py_flow_sde(py::object field, int64_t n, int64_t dim, py::object reward, const std::string& tilt,
                     int64_t steps, double noise, const std::string& schedule, double temperature, double guidance,
                     double tilt_drift, bool weighted, double ess_threshold, const std::string& resample,
                     bool final_resample, uint64_t seed) {
  FlowSdeOptions o;
  o.steps = steps, o.noise = noise, o.temperature = temperature, o.guidance = guidance;
  o.tilt_drift = tilt_drift, o.weighted = weighted, o.ess_threshold = ess_threshold;
  o.final_resample = final_resample;
  o.schedule = parse_noise_schedule(schedule, "noise_schedule");
  o.resample = wfr::parse_resample_scheme(resample, "resample");
  if (dim < 1) value_error("dim: " + std::to_string(dim) + ", expected the field's dimension (>= 1)");
  const FlowFieldFn f = python_field(field, dim);
  const LogRewardFn rw = python_reward(reward, tilt, dim);
  FlowSdeResult r;
  {
    py::gil_scoped_release release;
    r = sample_flow_sde(f, n, dim, rw, o, seed);
  }
  if (r.termination == Termination::NumericalFailure) value_error("flow_sde: " + r.message);
  return flow_sde_result(std::move(r), weighted);
}

}  // namespace

void bind_flow(py::module_& m) {
  // The class first: gaussian_mixture_field's signature names it.
  py::class_<FlowFieldFn>(m, "FlowField", "a velocity field for flow_sde (built in C++)");
  m.def("gaussian_mixture_field", &py_gaussian_mixture_field, py::arg("means"), py::arg("weights"), py::arg("stds"),
        py::arg("cond_weights") = py::none());
  m.def("flow_sde", &py_flow_sde, py::arg("field"), py::arg("n"), py::arg("dim"), py::arg("log_reward") = py::none(),
        py::arg("tilt") = "", py::arg("steps") = 100, py::arg("noise") = 1.0, py::arg("noise_schedule") = "sqrt",
        py::arg("temperature") = 1.0, py::arg("guidance") = 1.0, py::arg("tilt_drift") = 0.0,
        py::arg("weighted") = true, py::arg("ess_threshold") = 0.5, py::arg("resample") = "systematic",
        py::arg("final_resample") = true, py::arg("seed") = 0);
}

}  // namespace otgen::bindings
