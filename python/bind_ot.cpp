// The ot layer in Python: semidiscrete OT (options, fit, the map and what runs on it, noise), batch OT
// (exact assignment, Sinkhorn), PCA bases and the potential sidecars (otgen/ot/potential_meta.h).
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bindings.h"
#include "otgen/ot/assignment.h"
#include "otgen/core/memory.h"
#include "otgen/ot/pca.h"
#include "otgen/ot/potential_meta.h"
#include "otgen/ot/sdot_options.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/ot/sinkhorn.h"

using namespace otgen;

namespace otgen::bindings {

namespace {

const double inf = std::numeric_limits<double>::infinity();

// A Python value as an option value (otgen/ot/sdot_options.h): None = auto; bool before int (a bool is
// an int in Python); anything with __index__ (numpy integers too) an integer; other numbers reals.
SdotOptionValue option_value(py::handle v, const std::string& key) {
  if (v.is_none()) return {};
  if (PyBool_Check(v.ptr())) return v.cast<bool>();
  if (PyIndex_Check(v.ptr())) return v.cast<int64_t>();
  if (PyFloat_Check(v.ptr()) || PyNumber_Check(v.ptr())) return v.cast<double>();
  if (py::isinstance<py::str>(v)) return v.cast<std::string>();
  value_error(key + ": " + std::string(py::repr(v)) + ", expected a number, a bool, a string or None");
}

// SemidiscreteOT keyword options (a dict of option names) into Options; unknown names and wrong types
// raise ValueError naming the key.
SemidiscreteOT::Options sdot_options_from(const py::dict& options) {
  SemidiscreteOT::Options o;
  for (auto item : options) {
    const std::string key = py::str(item.first);
    const SdotOption* spec = find_sdot_option(key);
    if (!spec) value_error("unknown SemidiscreteOT option '" + key + "' (expected one of " + sdot_option_names() + ")");
    spec->set(o, option_value(item.second, key), key);
  }
  return o;
}

// Options arrive as a dict of SemidiscreteOT::Options field names; unknown keys are an error.
py::list py_sdot_options() {
  py::list out;
  const SemidiscreteOT::Options defaults;
  static const char* kinds[] = {"flag", "integer", "real", "name"};
  for (const SdotOption& spec : sdot_options()) {
    py::dict d;
    d["name"] = std::string(spec.name), d["flag"] = std::string(spec.flag);
    d["kind"] = kinds[static_cast<int>(spec.kind)], d["auto"] = spec.can_be_auto;
    d["choices"] = std::string(spec.choices), d["help"] = std::string(spec.help);
    d["default"] = sdot_option_text(spec.get(defaults));
    out.append(d);
  }
  return out;
}

// The per-step history of a fit as a dict of 1-D arrays.
py::dict sdot_history(const SemidiscreteOT::Result& r) {
  const auto rows = static_cast<py::ssize_t>(r.history.size());
  std::vector<int64_t> step(rows);
  std::vector<double> chi2(rows), tv(rows), tv_bound(rows), chi2_sd(rows), loss(rows), lr(rows), eps(rows),
      secs(rows);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (py::ssize_t k = 0; k < rows; ++k) {
    const auto& h = r.history[k];
    step[k] = h.step, chi2[k] = h.chi2.value_or(nan), tv[k] = h.tv.value_or(nan), loss[k] = h.loss;
    tv_bound[k] = h.tv_bound.value_or(nan), chi2_sd[k] = h.chi2_sd.value_or(nan);
    lr[k] = h.lr, eps[k] = h.epsilon, secs[k] = h.seconds;
  }
  py::dict history;
  history["step"] = owned(std::move(step), {rows});
  history["chi2"] = owned(std::move(chi2), {rows});
  history["tv"] = owned(std::move(tv), {rows});
  history["tv_bound"] = owned(std::move(tv_bound), {rows});
  history["chi2_sd"] = owned(std::move(chi2_sd), {rows});
  history["loss"] = owned(std::move(loss), {rows});
  history["lr"] = owned(std::move(lr), {rows});
  history["epsilon"] = owned(std::move(eps), {rows});
  history["seconds"] = owned(std::move(secs), {rows});
  return history;
}

// The result of a fit on data of dimension d as the dict of sdot_fit.
py::dict sdot_result(SemidiscreteOT::Result&& r, py::ssize_t d) {
  py::dict history = sdot_history(r);
  py::dict out;
  const auto n = static_cast<py::ssize_t>(r.g.size());
  out["g"] = owned(std::move(r.g), {n});
  out["history"] = history;
  out["termination"] = termination_name(r.termination);
  out["message"] = r.message;
  out["epsilon"] = r.epsilon;
  out["steps"] = r.steps;
  out["chi2"] = optional_value(r.chi2);
  out["reference_cost_std"] = optional_value(r.reference_cost_std);
  out["seconds"] = r.seconds;
  out["int8_screen"] = r.int8_screen;
  out["engine"] = r.engine;
  out["stopped_by"] = r.stopped_by;
  out["pca_basis"] = py::none();  // PCA-reduced matching: the (K, d) basis
  if (r.pca > 0) out["pca_basis"] = owned(std::move(r.pca_basis), {static_cast<py::ssize_t>(r.pca), d});
  py::dict resolved;  // what the automatic defaults resolved to
  resolved["init"] = r.init;
  resolved["lr"] = r.lr;
  resolved["lr_final"] = r.lr_final;
  resolved["gap_scale"] = r.gap_scale;
  resolved["lr_scale"] = r.lr_scale;
  resolved["chi2_every"] = r.chi2_every;
  resolved["chi2_repeats"] = r.chi2_repeats;
  out["resolved"] = resolved;
  return out;
}

// Under mpirun the per-point arrays are cut to this rank's rows: their whole lengths must be the data's
// first (ValueError naming the array; an optional one may be empty), as one process's checks require.
void require_whole_lengths(int64_t n, std::initializer_list<std::tuple<int64_t, const char*, bool>> arrays) {
  for (const auto& [len, name, required] : arrays)
    if ((len != 0 || required) && len != n)
      value_error(std::string("invalid ") + name + " = length " + std::to_string(len) + ": expected " +
                  std::to_string(n) + " (one per data point)");
}

py::dict py_sdot_fit(py::handle y, py::object weights, py::object labels, py::object g0, py::dict options,
                     uint64_t seed, int threads, bool progress, py::object callback) {
  const SemidiscreteOT::Options o = sdot_options_from(options);
  auto Y = points(y, "y");
  F64 B = optional_f64(weights, "weights");
  I64 L = optional_i64(labels, "labels");
  F32 G0 = optional_vector(g0, "g0");
  Context ctx = context(threads, seed);
  ctx.quiet = !progress;
  ctx.on_progress = python_progress(callback);
  ctx.should_stop = python_signals();
  require_memory("batch_size", o.batch_size, rows_bytes(o.batch_size, Y.view.d, 32),
                 "a batch of noise rows of dimension " + std::to_string(Y.view.d) + " (4 d + 32 bytes a row)");
  // Under mpirun: this rank's rows (the lengths are checked on the whole arrays first, as in one process).
  const Shard shard(Y.view.n);
  if (shard.world) {
    require_whole_lengths(Y.view.n, {{B.size(), "weights", false}, {L.size(), "labels", false}, {G0.size(), "g0", false}});
    ctx = shard.on(ctx);
  }
  SemidiscreteOT::Result r;
  {
    py::gil_scoped_release release;
    r = SemidiscreteOT(o).fit(shard.of(Y.view), shard.of(span_of_t(B)), ctx, shard.of(span_of_t(L)),
                              shard.of(span_of(G0)));
  }
  return sdot_result(std::move(r), Y.view.d);
}

// The map (y, g, weights, labels, eps, cost, beta) and what runs on it.
struct MapArgs {
  PointsArg y;
  F32 g;
  F64 b;
  I64 labels;
  F32 basis;  // PCA-reduced matching: (K, d), or empty
  SemidiscreteMap map;
  ScoreOptions engine;  // the argmax path of assign / check (engine=)
  Shard shard{0};       // under mpirun: this rank's rows of the map (Shard)
  Context context(int threads, uint64_t seed) const { return shard.on(bindings::context(threads, seed)); }
};

std::unique_ptr<MapArgs> make_map(py::handle y, py::handle g, py::object weights, py::object labels, double epsilon,
                                  const std::string& cost, double class_penalty, bool check_y = true,
                                  py::object pca_basis = py::none()) {
  auto a = std::make_unique<MapArgs>(MapArgs{points(y, "y", check_y), as_f32(g, "g", 1),
                                             optional_f64(weights, "weights"), optional_i64(labels, "labels"),
                                             pca_basis.is_none() ? F32() : as_f32(pca_basis, "pca_basis", 2), {}, {}});
  if (!pca_basis.is_none() && a->basis.shape(1) != a->y.view.d)
    value_error("pca_basis: shape (" + std::to_string(a->basis.shape(0)) + ", " + std::to_string(a->basis.shape(1)) +
                "), expected (K, " + std::to_string(a->y.view.d) + "): K directions in the data's dimension");
  // Under mpirun: this rank's rows, once the whole arrays' lengths agree (as sdot_prepare checks them).
  a->shard = Shard(a->y.view.n);
  if (a->shard.world)
    require_whole_lengths(a->y.view.n, {{a->g.size(), "g", true}, {a->b.size(), "weights", false},
                                        {a->labels.size(), "labels", false}});
  const Shard& s = a->shard;
  const SdotProblem problem{s.of(a->y.view), s.of(span_of_t(a->b)), s.of(span_of_t(a->labels)), parse_sdot_cost(cost),
                            class_penalty};
  a->map = SemidiscreteMap(problem, s.of(span_of(a->g)), epsilon, span_of(a->basis));
  // sdot_assign / sdot_sample / sdot_check validate the map (once, for an SdotMap).
  return a;
}

py::array_t<int64_t> run_assign(MapArgs& a, py::handle x, py::object x_labels, int64_t k, bool sample, uint64_t seed,
                                 int threads) {
  auto X = points(x, "x");
  I64 XL = optional_i64(x_labels, "x_labels");
  std::vector<int64_t> idx;
  {
    py::gil_scoped_release release;
    const Context ctx = a.context(threads, seed);
    if (k > 0) idx = sdot_topk(a.map, X.view, k, ctx, span_of_t(XL), a.engine);
    else if (sample) idx = sdot_sample(a.map, X.view, seed, ctx, span_of_t(XL), a.engine);
    else idx = sdot_assign(a.map, X.view, ctx, span_of_t(XL), a.engine);
  }
  if (k > 0) return owned(std::move(idx), {X.view.n, static_cast<py::ssize_t>(k)});
  return owned(std::move(idx), {X.view.n});
}

py::dict run_check(MapArgs& a, int64_t batch, int64_t repeats, uint64_t seed, int threads) {
  require_memory("batch", batch, rows_bytes(batch, a.map.y.d, 32),
                 "a batch of noise rows of dimension " + std::to_string(a.map.y.d) + " (4 d + 32 bytes a row)");
  SdotMarginalStats st;
  {
    py::gil_scoped_release release;
    st = sdot_check(a.map, batch, repeats, seed, a.context(threads, seed), a.engine);
  }
  py::dict out;
  out["chi2"] = st.chi2;
  out["tv"] = st.tv;
  out["tv_floor"] = optional_value(st.tv_floor);
  out["chi2_sd"] = optional_value(st.chi2_sd);
  out["tv_bound"] = optional_value(st.tv_bound);
  out["min_ratio"] = st.min_ratio;
  out["max_ratio"] = st.max_ratio;
  out["empty"] = st.empty;
  out["draws"] = st.draws;
  return out;
}

py::array_t<int64_t> py_sdot_assign(py::handle y, py::handle g, py::handle x, py::object weights, py::object labels,
                                    py::object x_labels, double epsilon, const std::string& cost,
                                    double class_penalty, int64_t k, bool sample, uint64_t seed, int threads,
                                    bool check_y, py::object pca_basis) {
  auto a = make_map(y, g, weights, labels, epsilon, cost, class_penalty, check_y, pca_basis);
  return run_assign(*a, x, x_labels, k, sample, seed, threads);
}

py::dict py_sdot_check(py::handle y, py::handle g, py::object weights, py::object labels, double epsilon,
                       const std::string& cost, double class_penalty, int64_t batch, int64_t repeats, uint64_t seed,
                       int threads, py::object pca_basis) {
  auto a = make_map(y, g, weights, labels, epsilon, cost, class_penalty, true, pca_basis);
  return run_check(*a, batch, repeats, seed, threads);
}

// A map prepared once (checked data, |y|^2, int8 screen) for many calls: what SemidiscreteOT keeps.
struct MapHandle {
  std::unique_ptr<MapArgs> a;
};

MapHandle make_map_handle(py::handle y, py::handle g, py::object weights, py::object labels, double epsilon,
                          const std::string& cost, double class_penalty, bool check_y, int threads, bool int8_screen,
                          const std::string& engine_name, py::object pca_basis) {
  MapHandle h{make_map(y, g, weights, labels, epsilon, cost, class_penalty, check_y, pca_basis)};
  h.a->engine = engine_options(engine_name);
  h.a->engine.int8_screen = int8_screen;
  py::gil_scoped_release release;
  sdot_prepare(h.a->map, h.a->context(threads, 0), h.a->engine);
  return h;
}

void bind_sdot_map(py::module_& m) {
  py::class_<MapHandle>(m, "SdotMap")
      .def(py::init(&make_map_handle), py::arg("y"), py::arg("g"), py::arg("weights") = py::none(),
           py::arg("labels") = py::none(), py::arg("epsilon") = 0.0, py::arg("cost") = "sqeuclidean_half",
           py::arg("class_penalty") = inf, py::arg("check_y") = true, py::arg("threads") = 0,
           py::arg("int8_screen") = true, py::arg("engine") = "auto", py::arg("pca_basis") = py::none())
      .def("assign",
           [](MapHandle& h, py::handle x, py::object x_labels, int64_t k, bool sample, uint64_t seed, int threads) {
             return run_assign(*h.a, x, x_labels, k, sample, seed, threads);
           },
           py::arg("x"), py::arg("x_labels") = py::none(), py::arg("k") = 0, py::arg("sample") = false,
           py::arg("seed") = 0, py::arg("threads") = 0)
      .def("check",
           [](MapHandle& h, int64_t batch, int64_t repeats, uint64_t seed, int threads) {
             return run_check(*h.a, batch, repeats, seed, threads);
           },
           py::arg("batch") = 1024, py::arg("repeats") = 16, py::arg("seed") = 0, py::arg("threads") = 0)
      .def_property_readonly("int8_screen", [](const MapHandle& h) { return sdot_int8_screen(h.a->map); })
      .def_property_readonly("engine",
                             [](const MapHandle& h) { return std::string(sdot_argmax_engine(h.a->map, h.a->engine)); });
}

auto py_noise(int64_t n, int64_t d, uint64_t seed, uint64_t step, int threads) {
  if (n < 0) value_error("n: " + std::to_string(n) + ", expected n >= 0");
  if (d < 1) value_error("d: " + std::to_string(d) + ", expected d >= 1");
  Points x;
  {
    py::gil_scoped_release release;
    x = sdot_noise(n, d, seed, context(threads, seed), step);
  }
  return owned(std::move(x.data), {n, d});
}

auto py_noise_classes(py::object class_weights, int64_t n, uint64_t seed, uint64_t step) {
  F64 W = optional_f64(class_weights, "class_weights");
  return owned(noise_classes(std::span<const double>(W.data(), W.size()), n, seed, step), {n});
}

void bind_sdot(py::module_& m) {
  m.def("sdot_options", &py_sdot_options,
        "The SemidiscreteOT options (otgen/ot/sdot_options.h): name, CLI flag, kind, auto, choices, help, default.");
  m.def("sdot_fit", &py_sdot_fit, py::arg("y"), py::arg("weights"), py::arg("labels"), py::arg("g0"),
        py::arg("options"), py::arg("seed"), py::arg("threads"), py::arg("progress"), py::arg("callback") = py::none());
  m.def("sdot_assign", &py_sdot_assign, py::arg("y"), py::arg("g"), py::arg("x"), py::arg("weights") = py::none(),
        py::arg("labels") = py::none(), py::arg("x_labels") = py::none(), py::arg("epsilon") = 0.0,
        py::arg("cost") = "sqeuclidean_half", py::arg("class_penalty") = inf, py::arg("k") = 0,
        py::arg("sample") = false, py::arg("seed") = 0, py::arg("threads") = 0, py::arg("check_y") = true,
        py::arg("pca_basis") = py::none());
  m.def("sdot_check", &py_sdot_check, py::arg("y"), py::arg("g"), py::arg("weights") = py::none(),
        py::arg("labels") = py::none(), py::arg("epsilon") = 0.0, py::arg("cost") = "sqeuclidean_half",
        py::arg("class_penalty") = inf, py::arg("batch") = 1024, py::arg("repeats") = 16, py::arg("seed") = 0,
        py::arg("threads") = 0, py::arg("pca_basis") = py::none());
  bind_sdot_map(m);
  m.def("noise", &py_noise, py::arg("n"), py::arg("d"), py::arg("seed") = 0, py::arg("step") = 0,
        py::arg("threads") = 0);
  m.def("noise_classes", &py_noise_classes, py::arg("class_weights"), py::arg("n"), py::arg("seed") = 0,
        py::arg("step") = 0);
}

// ---- batch OT ---------------------------------------------------------------------------------

auto py_exact_assignment(py::handle x, py::handle y, const std::string& solver, int threads) {
  auto X = points(x, "x"), Y = points(y, "y");
  AssignmentOptions o;
  if (solver == "jv") o.solver = AssignmentSolver::JonkerVolgenant;
  else if (solver == "network_simplex") o.solver = AssignmentSolver::NetworkSimplex;
  else value_error("solver: '" + solver + "', expected 'jv' or 'network_simplex'");
  AssignmentResult r;
  {
    py::gil_scoped_release release;
    r = exact_assignment(X.view, Y.view, context(threads), o);
  }
  const auto n = static_cast<py::ssize_t>(r.permutation.size());
  return py::make_tuple(owned(std::move(r.permutation), {n}), r.cost);
}

py::dict py_sinkhorn(py::handle x, py::handle y, py::object a, py::object b, double epsilon, bool relative_epsilon,
                     double tol, int64_t max_iterations, int64_t check_every, bool eps_scaling, const std::string& mode,
                     int threads) {
  auto X = points(x, "x"), Y = points(y, "y");
  F64 A = optional_f64(a, "a"), B = optional_f64(b, "b");
  SinkhornOptions o;
  o.epsilon = epsilon, o.relative_epsilon = relative_epsilon, o.tol = tol, o.max_iterations = max_iterations;
  o.check_every = check_every, o.eps_scaling = eps_scaling;
  if (mode == "auto") o.mode = SinkhornMode::Auto;
  else if (mode == "dense") o.mode = SinkhornMode::Dense;
  else if (mode == "online") o.mode = SinkhornMode::Online;
  else value_error("mode: '" + mode + "', expected 'auto', 'dense' or 'online'");
  SinkhornResult r;
  {
    py::gil_scoped_release release;
    r = sinkhorn(X.view, Y.view, span_of_t(A), span_of_t(B), context(threads), o);
  }
  py::dict out;
  const auto nf = static_cast<py::ssize_t>(r.f.size()), ng = static_cast<py::ssize_t>(r.g.size());
  out["f"] = owned(std::move(r.f), {nf});
  out["g"] = owned(std::move(r.g), {ng});
  out["epsilon"] = r.epsilon;
  out["cost_std"] = optional_value(r.cost_std);
  out["iterations"] = r.iterations;
  out["stages"] = r.stages;
  out["marginal_error"] = r.marginal_error;
  out["transport_cost"] = r.transport_cost;
  out["dual_objective"] = r.dual_objective;
  out["dense"] = r.dense;
  out["termination"] = termination_name(r.termination);
  out["message"] = r.message;
  return out;
}

// ---- PCA bases and potential sidecars (otgen/ot/potential_meta.h) ----------------------------------

auto py_pca_basis(py::handle train, std::optional<int64_t> dim) {
  auto T = points(train, "train");
  PcaBasis b;
  {
    py::gil_scoped_release release;
    b = pca_basis(T.view, dim);
  }
  const int64_t d = b.d, k = b.dim;
  const double total = b.total_variance;
  return py::make_tuple(owned(std::move(b.mean), {d}), owned(std::move(b.components), {k, d}),
                        owned(std::move(b.variances), {k}), total);
}

auto py_check_potential_meta(const std::string& path, py::handle y, py::object labels, py::object weights,
                             double epsilon, const std::string& cost, double class_penalty) {
  auto Y = points(y, "y");
  I64 L = optional_i64(labels, "labels");
  F64 W = optional_f64(weights, "weights");
  const auto meta = potential_meta(Y.view, span_of_t(L), std::span<const double>(W.data(), W.size()), epsilon,
                                   parse_sdot_cost(cost, "cost"), class_penalty);
  return check_potential_meta(path, meta, "g", "allow_foreign_potential=True");
}

py::object py_read_potential_basis(const std::string& path, int64_t d) {
  std::vector<float> U = read_potential_basis(path, d, "g");
  if (U.empty()) return py::none();
  const auto k = static_cast<py::ssize_t>(U.size() / static_cast<size_t>(d));
  return owned(std::move(U), {k, d});
}

}  // namespace

void bind_ot(py::module_& m) {
  bind_sdot(m);
  m.def("exact_assignment", &py_exact_assignment, py::arg("x"), py::arg("y"), py::arg("solver") = "jv",
        py::arg("threads") = 0);
  m.def("sinkhorn", &py_sinkhorn, py::arg("x"), py::arg("y"), py::arg("a") = py::none(), py::arg("b") = py::none(),
        py::arg("epsilon") = 0.05, py::arg("relative_epsilon") = false, py::arg("tol") = 1e-4,
        py::arg("max_iterations") = 10000, py::arg("check_every") = 1, py::arg("eps_scaling") = true,
        py::arg("mode") = "auto", py::arg("threads") = 0);
  m.def("pca_basis", &py_pca_basis, py::arg("train"), py::arg("dim") = py::none());
  m.def("check_potential_meta", &py_check_potential_meta, py::arg("path"), py::arg("y"), py::arg("labels") = py::none(),
        py::arg("weights") = py::none(), py::arg("epsilon") = 0.0, py::arg("cost") = "sqeuclidean_half",
        py::arg("class_penalty") = inf);
  m.def("read_potential_basis", &py_read_potential_basis, py::arg("path"), py::arg("d"));
}

}  // namespace otgen::bindings
