// The one binding file of the otgen Python module (_otgen). Boundary only: arrays are taken as float32
// C-contiguous (no copy when they already are; other real dtypes converted once), validated before the
// GIL is released, and results are returned as numpy arrays owned by capsules. otgen::Error becomes
// ValueError. No numerical logic lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "otgen/assignment.h"
#include "otgen/coupling.h"
#include "otgen/data.h"
#include "otgen/error.h"
#include "otgen/evaluation.h"
#include "otgen/flow_sde.h"
#include "otgen/lattice.h"
#include "otgen/memory.h"
#include "otgen/metrics.h"
#include "otgen/potential_meta.h"
#include "otgen/progress.h"
#include "otgen/scores.h"
#include "otgen/sdot_options.h"
#include "otgen/semidiscrete.h"
#include "otgen/sinkhorn.h"
#include "otgen/streams.h"
#include "otgen/version.h"
#include "otgen/wfr.h"

namespace py = pybind11;
using namespace otgen;

namespace {

using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;
using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

[[noreturn]] void value_error(const std::string& msg) { throw py::value_error(msg); }

// A float32 C-contiguous view of `obj` (converted once if needed) that must be real-valued and have
// `ndim` dimensions. The returned array keeps the data alive.
F32 as_f32(py::handle obj, const char* name, int ndim) {
  py::array a = py::array::ensure(obj);
  if (!a) value_error(std::string(name) + ": expected a numpy array or array-like, got " +
                      std::string(py::str(obj.get_type().attr("__name__"))));
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u')
    value_error(std::string(name) + ": dtype " + std::string(py::str(a.dtype())) +
                " is not supported, expected a real numeric array (float32 is used without a copy)");
  if (ndim == 2 && a.ndim() == 1) a = a.attr("reshape")(-1, 1);  // n points of dimension 1, as .npy files
  if (a.ndim() != ndim)
    value_error(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array, got " + std::to_string(a.ndim()) +
                "-D with shape " + std::string(py::str(py::tuple(a.attr("shape")))));
  return F32::ensure(a);
}

struct PointsArg {
  F32 array;
  PointsView view;
};

// check_finite = false only for arrays the caller validated before (e.g. a fitted solver's data).
PointsArg points(py::handle obj, const char* name, bool check_finite = true) {
  PointsArg p{as_f32(obj, name, 2), {}};
  p.view = {p.array.data(), p.array.shape(0), p.array.shape(1)};
  if (check_finite) require_finite(p.view, name);
  return p;
}

std::span<const float> span_of(const F32& a) { return {a.data(), static_cast<size_t>(a.size())}; }

// Optional 1-D float vector (None -> empty).
F32 optional_vector(const py::object& obj, const char* name) {
  if (obj.is_none()) return F32(0);
  return as_f32(obj, name, 1);
}

// A numpy array that owns `values` through a capsule.
template <class T>
py::array_t<T> owned(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  auto holder = std::make_unique<std::vector<T>>(std::move(values));
  T* data = holder->data();
  py::capsule capsule(holder.get(), [](void* p) { delete static_cast<std::vector<T>*>(p); });
  holder.release();
  return py::array_t<T>(shape, data, capsule);
}

Context context(int threads, uint64_t seed = 0) {
  Context ctx;
  ctx.threads = threads;
  ctx.seed = seed;
  ctx.quiet = true;
  ctx.validate();
  return ctx;
}

// engine= of the Python API: a path name (otgen/cpu_features.h) the CPU can run; ValueError naming `engine`.
ScoreOptions engine_options(const std::string& name) {
  ScoreOptions opt;
  opt.path = parse_engine_path(name, "engine");
  require_engine_path(opt.path, "engine");
  return opt;
}

// A Python value as an option value (otgen/sdot_options.h): None = auto; bool before int (a bool is
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

// A progress callback calling fn(step, total, metrics) with the GIL held; fn is borrowed (the caller's
// argument keeps it alive during the call). None: no callback. A Python exception in fn ends the run
// and is raised by the call.
ProgressCallback python_progress(py::handle fn) {
  if (fn.is_none()) return {};
  return [fn](const ProgressEvent& e) {
    py::gil_scoped_acquire acquire;
    py::dict metrics;
    for (const auto& [name, value] : e.metrics) metrics[py::str(name)] = value;
    fn(e.done, e.total, metrics);
  };
}

// Context::should_stop for long calls made without the GIL: a pending Python signal whose handler raises
// (Ctrl-C: KeyboardInterrupt) ends the call with that exception. Checked at most every 50 ms.
std::function<bool()> python_signals() {
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  return [last] {
    const auto now = std::chrono::steady_clock::now();
    if (now - *last < std::chrono::milliseconds(50)) return false;
    *last = now;
    py::gil_scoped_acquire acquire;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    return false;
  };
}

// Optional 1-D float64 vector (weights); None -> empty.
F64 optional_f64(const py::object& obj, const char* name) {
  if (obj.is_none()) return F64(0);
  py::array a = py::array::ensure(obj);
  if (!a || (a.dtype().kind() != 'f' && a.dtype().kind() != 'i' && a.dtype().kind() != 'u') || a.ndim() != 1)
    value_error(std::string(name) + ": expected a 1-D real array");
  return F64::ensure(a);
}

// Optional 1-D int64 vector (labels); None -> empty. Floats are rejected (labels are integers).
I64 optional_i64(const py::object& obj, const char* name) {
  if (obj.is_none()) return I64(0);
  py::array a = py::array::ensure(obj);
  if (!a || (a.dtype().kind() != 'i' && a.dtype().kind() != 'u') || a.ndim() != 1)
    value_error(std::string(name) + ": expected a 1-D integer array");
  I64 l = I64::ensure(a);
  require_labels(std::span<const int64_t>(l.data(), static_cast<size_t>(l.size())), name);  // >= 0, fits in memory
  return l;
}

template <class A>
auto span_of_t(const A& a) {
  using T = typename std::remove_const_t<std::remove_pointer_t<decltype(a.data())>>;
  return std::span<const T>(a.data(), static_cast<size_t>(a.size()));
}

py::object optional_value(const std::optional<double>& v) { return v ? py::object(py::float_(*v)) : py::none(); }

ScoreProblem problem(const PointsArg& x, const PointsArg& y, const F32& h) { return {x.view, y.view, span_of(h)}; }

}  // namespace

PYBIND11_MODULE(_otgen, m) {
  m.doc() = "otgen compiled core (use the otgen package)";
  m.attr("__version__") = OTGEN_VERSION_STRING;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  // ---- datasets -------------------------------------------------------------------------------
  m.def("dataset_names", &dataset_names);
  m.def(
      "load_dataset",
      [](const std::string& name, int64_t n, uint64_t seed, bool shuffle, bool test_split, const std::string& path,
         const std::string& labels_path) {
        DatasetOptions o;
        o.n = n, o.seed = seed, o.shuffle = shuffle, o.test_split = test_split, o.path = path, o.labels_path = labels_path;
        Dataset ds;
        {
          py::gil_scoped_release release;
          ds = load_dataset(name, o);
        }
        const auto n_pts = ds.x.n, d = ds.x.d;
        py::object labels = py::none();
        if (!ds.labels.empty()) labels = owned(std::move(ds.labels), {n_pts});
        return py::make_tuple(owned(std::move(ds.x.data), {n_pts, d}), labels, ds.num_classes);
      },
      py::arg("name"), py::arg("n") = 0, py::arg("seed") = 0, py::arg("shuffle") = false, py::arg("test_split") = false,
      py::arg("path") = "", py::arg("labels_path") = "");

  // ---- score engine ---------------------------------------------------------------------------
  m.def(
      "row_argmax",
      [](py::handle x, py::handle y, py::object h, int threads, const std::string& engine) {
        auto X = points(x, "x"), Y = points(y, "y");
        F32 H = optional_vector(h, "h");
        const ScoreOptions opt = engine_options(engine);
        std::vector<int64_t> idx(X.view.n);
        std::vector<float> val(X.view.n);
        {
          py::gil_scoped_release release;
          row_argmax(problem(X, Y, H), idx, val, context(threads), opt);
        }
        const auto n = X.view.n;
        return py::make_tuple(owned(std::move(idx), {n}), owned(std::move(val), {n}));
      },
      py::arg("x"), py::arg("y"), py::arg("h") = py::none(), py::arg("threads") = 0, py::arg("engine") = "auto");
  m.def(
      "argmax_engine",
      [](int64_t d, const std::string& engine) {
        return std::string(engine_path_name(argmax_path(d, engine_options(engine))));
      },
      py::arg("d"), py::arg("engine") = "auto",
      "The path row_argmax takes for dimension d under engine= ('fp32', 'vnni' or 'avx512bf16').");
  m.def("cpu_features", [] { return cpu_features().summary(); },
        "The instruction sets the engine may use on this CPU (cpuid + OS state), space-separated.");
  m.def(
      "row_logsumexp",
      [](py::handle x, py::handle y, py::object h, float scale, py::object log_b, int threads) {
        auto X = points(x, "x"), Y = points(y, "y");
        F32 H = optional_vector(h, "h"), LB = optional_vector(log_b, "log_b");
        std::vector<float> lse(X.view.n);
        {
          py::gil_scoped_release release;
          row_logsumexp(problem(X, Y, H), scale, span_of(LB), lse, context(threads));
        }
        return owned(std::move(lse), {X.view.n});
      },
      py::arg("x"), py::arg("y"), py::arg("h") = py::none(), py::arg("scale") = 1.0f, py::arg("log_b") = py::none(),
      py::arg("threads") = 0);

  m.def(
      "row_topk",
      [](py::handle x, py::handle y, int64_t k, py::object h, int threads, const std::string& engine) {
        auto X = points(x, "x"), Y = points(y, "y");
        F32 H = optional_vector(h, "h");
        const ScoreOptions opt = engine_options(engine);
        const int64_t n = X.view.n;
        std::vector<int64_t> idx(k > 0 ? n * k : 0);
        std::vector<float> val(idx.size());
        {
          py::gil_scoped_release release;
          row_topk(problem(X, Y, H), k, idx, val, context(threads), opt);
        }
        return py::make_tuple(owned(std::move(idx), {n, k}), owned(std::move(val), {n, k}));
      },
      py::arg("x"), py::arg("y"), py::arg("k"), py::arg("h") = py::none(), py::arg("threads") = 0,
      py::arg("engine") = "auto");
  m.def(
      "softmax_column_sums",
      [](py::handle x, py::handle y, py::object h, float scale, py::object log_b, int threads) {
        auto X = points(x, "x"), Y = points(y, "y");
        F32 H = optional_vector(h, "h"), LB = optional_vector(log_b, "log_b");
        std::vector<double> cols(Y.view.n);
        std::vector<float> lse(X.view.n);
        {
          py::gil_scoped_release release;
          softmax_column_sums(problem(X, Y, H), scale, span_of(LB), cols, lse, context(threads));
        }
        return py::make_tuple(owned(std::move(cols), {Y.view.n}), owned(std::move(lse), {X.view.n}));
      },
      py::arg("x"), py::arg("y"), py::arg("h") = py::none(), py::arg("scale") = 1.0f, py::arg("log_b") = py::none(),
      py::arg("threads") = 0);
  m.def(
      "row_gumbel_argmax",
      [](py::handle x, py::handle y, py::object h, float scale, py::object log_b, uint64_t seed, int threads) {
        auto X = points(x, "x"), Y = points(y, "y");
        F32 H = optional_vector(h, "h"), LB = optional_vector(log_b, "log_b");
        std::vector<int64_t> idx(X.view.n);
        {
          py::gil_scoped_release release;
          row_gumbel_argmax(problem(X, Y, H), scale, span_of(LB), seed, idx, context(threads));
        }
        return owned(std::move(idx), {X.view.n});
      },
      py::arg("x"), py::arg("y"), py::arg("h") = py::none(), py::arg("scale") = 1.0f, py::arg("log_b") = py::none(),
      py::arg("seed") = 0, py::arg("threads") = 0);
  m.def(
      "kernel_row_logsumexp",
      [](py::handle x, py::handle y, double alpha, py::object log_w, int threads) {
        auto X = points(x, "x"), Y = points(y, "y");
        F32 LW = optional_vector(log_w, "log_w");
        std::vector<float> out(X.view.n);
        {
          py::gil_scoped_release release;
          kernel_row_logsumexp(X.view, Y.view, alpha, span_of(LW), out, context(threads));
        }
        return owned(std::move(out), {X.view.n});
      },
      py::arg("x"), py::arg("y"), py::arg("alpha"), py::arg("log_w") = py::none(), py::arg("threads") = 0);

  // ---- metrics --------------------------------------------------------------------------------
  m.def(
      "energy_distance",
      [](py::handle x, py::handle y, int threads) {
        auto X = points(x, "x"), Y = points(y, "y");
        py::gil_scoped_release release;
        return energy_distance(X.view, Y.view, context(threads));
      },
      py::arg("x"), py::arg("y"), py::arg("threads") = 0);
  m.def(
      "mmd2",
      [](py::handle x, py::handle y, std::vector<double> gammas, bool biased, int threads) {
        auto X = points(x, "x"), Y = points(y, "y");
        py::gil_scoped_release release;
        return mmd2(X.view, Y.view, gammas, biased, context(threads));
      },
      py::arg("x"), py::arg("y"), py::arg("gammas"), py::arg("biased") = false, py::arg("threads") = 0);
  m.def(
      "sliced_w2",
      [](py::handle x, py::handle y, int64_t projections, uint64_t seed) {
        auto X = points(x, "x"), Y = points(y, "y");
        py::gil_scoped_release release;
        return sliced_w2(X.view, Y.view, projections, seed);
      },
      py::arg("x"), py::arg("y"), py::arg("projections") = 128, py::arg("seed") = 0);
  m.def(
      "mean_marginal_w1",
      [](py::handle x, py::handle y) {
        auto X = points(x, "x"), Y = points(y, "y");
        py::gil_scoped_release release;
        return mean_marginal_w1(X.view, Y.view);
      },
      py::arg("x"), py::arg("y"));
  m.def(
      "frechet_distance",
      [](py::handle x, py::handle y) {
        auto X = points(x, "x"), Y = points(y, "y");
        py::gil_scoped_release release;
        return frechet_distance(X.view, Y.view);
      },
      py::arg("x"), py::arg("y"));
  m.def(
      "exact_w2",
      [](py::handle x, py::handle y, int64_t max_points, uint64_t seed, int threads) {
        auto X = points(x, "x"), Y = points(y, "y");
        const Context ctx = context(threads);
        py::gil_scoped_release release;
        const ExactW2 r = exact_w2(X.view, Y.view, max_points, seed, ctx);
        return std::make_pair(r.w2, r.points);
      },
      py::arg("x"), py::arg("y"), py::arg("max_points") = 2048, py::arg("seed") = 0, py::arg("threads") = 0);
  m.def(
      "precision_recall",
      [](py::handle x_real, py::handle x_fake, int64_t k, int threads) {
        auto R = points(x_real, "x_real"), F = points(x_fake, "x_fake");
        const Context ctx = context(threads);
        py::gil_scoped_release release;
        const PrecisionRecall pr = precision_recall(R.view, F.view, k, ctx);
        return std::make_pair(pr.precision, pr.recall);
      },
      py::arg("x_real"), py::arg("x_fake"), py::arg("k") = 3, py::arg("threads") = 0);
  m.def(
      "pca_basis",
      [](py::handle train, std::optional<int64_t> dim) {
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
      },
      py::arg("train"), py::arg("dim") = py::none());
  m.def(
      "frechet_distance_pca",
      [](py::handle x, py::handle y, py::handle train, std::optional<int64_t> dim) {
        auto X = points(x, "x"), Y = points(y, "y"), T = points(train, "train");
        py::gil_scoped_release release;
        const PcaBasis b = pca_basis(T.view, dim);
        return frechet_distance(X.view, Y.view, b);
      },
      py::arg("x"), py::arg("y"), py::arg("train"), py::arg("dim") = py::none());
  m.def(
      "median_distance",
      [](py::handle x, py::handle y, int64_t per_side) {
        auto X = points(x, "x"), Y = points(y, "y");
        py::gil_scoped_release release;
        return median_distance(X.view, Y.view, per_side);
      },
      py::arg("x"), py::arg("y"), py::arg("per_side") = 500);
  m.def(
      "mmd2_per_bandwidth",
      [](py::handle x, py::handle y, std::vector<double> gammas, int threads) {
        auto X = points(x, "x"), Y = points(y, "y");
        const Context ctx = context(threads);
        py::gil_scoped_release release;
        return mmd2_per_bandwidth(X.view, Y.view, gammas, ctx);
      },
      py::arg("x"), py::arg("y"), py::arg("gammas"), py::arg("threads") = 0);
  m.def(
      "bootstrap_indices",
      [](int64_t n, uint64_t seed, int64_t replicate, int side) {
        return owned(bootstrap_indices(n, seed, replicate, side), {n});
      },
      py::arg("n"), py::arg("seed"), py::arg("replicate"), py::arg("side"));
  // The JSON document of otgen eval, as a string (otgen.metrics.evaluate parses it).
  m.def(
      "evaluate",
      [](py::handle samples, py::handle reference, std::vector<std::string> metrics, py::object pca_data,
         std::optional<int64_t> pca_dim, int64_t bootstrap, int64_t projections, int64_t max_points, int64_t k,
         std::vector<double> mmd_scales, double level, bool keep_replicates, uint64_t seed, int threads) {
        auto X = points(samples, "samples"), Y = points(reference, "reference");
        std::optional<PointsArg> T;
        if (!pca_data.is_none()) T = points(pca_data, "pca_data");
        EvalOptions o;
        o.metrics = std::move(metrics);
        o.pca_dim = pca_dim;
        o.bootstrap = bootstrap;
        o.projections = projections;
        o.max_points = max_points;
        o.k = k;
        o.mmd_scales = std::move(mmd_scales);
        o.level = level;
        o.keep_replicates = keep_replicates;
        const Context ctx = context(threads, seed);
        py::gil_scoped_release release;
        return evaluate(X.view, Y.view, T ? T->view : PointsView{}, o, ctx).dump();
      },
      py::arg("samples"), py::arg("reference"), py::arg("metrics"), py::arg("pca_data"), py::arg("pca_dim"),
      py::arg("bootstrap"), py::arg("projections"), py::arg("max_points"), py::arg("k"), py::arg("mmd_scales"),
      py::arg("level"), py::arg("keep_replicates"), py::arg("seed"), py::arg("threads"));

  // ---- semidiscrete OT ------------------------------------------------------------------------
  // Options arrive as a dict of SemidiscreteOT::Options field names; unknown keys are an error.
  m.def(
      "sdot_options",
      [] {
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
      },
      "The SemidiscreteOT options (otgen/sdot_options.h): name, CLI flag, kind, auto, choices, help, default.");
  m.def("int8_screen_supported", &LatticeColumns::cpu_supported,
        "Whether this CPU has the instructions of the exact int8 screen (AVX-512 F, BW, VNNI).");
  m.def(
      "sdot_fit",
      [](py::handle y, py::object weights, py::object labels, py::object g0, py::dict options, uint64_t seed,
         int threads, bool progress, py::object callback) {
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
        SemidiscreteOT::Result r;
        {
          py::gil_scoped_release release;
          r = SemidiscreteOT(o).fit(Y.view, span_of_t(B), ctx, span_of_t(L), span_of(G0));
        }
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
        if (r.pca > 0) out["pca_basis"] = owned(std::move(r.pca_basis), {static_cast<py::ssize_t>(r.pca), Y.view.d});
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
      },
      py::arg("y"), py::arg("weights"), py::arg("labels"), py::arg("g0"), py::arg("options"), py::arg("seed"),
      py::arg("threads"), py::arg("progress"), py::arg("callback") = py::none());

  // The map (y, g, weights, labels, eps, cost, beta) and what runs on it.
  struct MapArgs {
    PointsArg y;
    F32 g;
    F64 b;
    I64 labels;
    F32 basis;  // PCA-reduced matching: (K, d), or empty
    SemidiscreteMap map;
    ScoreOptions engine;  // the argmax path of assign / check (engine=)
  };
  auto make_map = [](py::handle y, py::handle g, py::object weights, py::object labels, double epsilon,
                     const std::string& cost, double class_penalty, bool check_y = true,
                     py::object pca_basis = py::none()) {
    auto a = std::make_unique<MapArgs>(MapArgs{points(y, "y", check_y), as_f32(g, "g", 1), optional_f64(weights, "weights"),
                                               optional_i64(labels, "labels"),
                                               pca_basis.is_none() ? F32() : as_f32(pca_basis, "pca_basis", 2), {}, {}});
    if (!pca_basis.is_none() && a->basis.shape(1) != a->y.view.d)
      value_error("pca_basis: shape (" + std::to_string(a->basis.shape(0)) + ", " + std::to_string(a->basis.shape(1)) +
                  "), expected (K, " + std::to_string(a->y.view.d) + "): K directions in the data's dimension");
    const SdotProblem problem{a->y.view, span_of_t(a->b), span_of_t(a->labels), parse_sdot_cost(cost), class_penalty};
    a->map = SemidiscreteMap(problem, span_of(a->g), epsilon, span_of(a->basis));
    // sdot_assign / sdot_sample / sdot_check validate the map (once, for an SdotMap).
    return a;
  };
  const double inf = std::numeric_limits<double>::infinity();
  auto run_assign = [](MapArgs& a, py::handle x, py::object x_labels, int64_t k, bool sample, uint64_t seed,
                       int threads) {
    auto X = points(x, "x");
    I64 XL = optional_i64(x_labels, "x_labels");
    std::vector<int64_t> idx;
    {
      py::gil_scoped_release release;
      const Context ctx = context(threads, seed);
      if (k > 0) idx = sdot_topk(a.map, X.view, k, ctx, span_of_t(XL), a.engine);
      else if (sample) idx = sdot_sample(a.map, X.view, seed, ctx, span_of_t(XL), a.engine);
      else idx = sdot_assign(a.map, X.view, ctx, span_of_t(XL), a.engine);
    }
    if (k > 0) return owned(std::move(idx), {X.view.n, static_cast<py::ssize_t>(k)});
    return owned(std::move(idx), {X.view.n});
  };
  auto run_check = [](MapArgs& a, int64_t batch, int64_t repeats, uint64_t seed, int threads) {
    require_memory("batch", batch, rows_bytes(batch, a.map.y.d, 32),
                   "a batch of noise rows of dimension " + std::to_string(a.map.y.d) + " (4 d + 32 bytes a row)");
    SdotMarginalStats st;
    {
      py::gil_scoped_release release;
      st = sdot_check(a.map, batch, repeats, seed, context(threads, seed), a.engine);
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
  };
  m.def(
      "sdot_assign",
      [make_map, run_assign](py::handle y, py::handle g, py::handle x, py::object weights, py::object labels,
                             py::object x_labels, double epsilon, const std::string& cost, double class_penalty,
                             int64_t k, bool sample, uint64_t seed, int threads, bool check_y, py::object pca_basis) {
        auto a = make_map(y, g, weights, labels, epsilon, cost, class_penalty, check_y, pca_basis);
        return run_assign(*a, x, x_labels, k, sample, seed, threads);
      },
      py::arg("y"), py::arg("g"), py::arg("x"), py::arg("weights") = py::none(), py::arg("labels") = py::none(),
      py::arg("x_labels") = py::none(), py::arg("epsilon") = 0.0, py::arg("cost") = "sqeuclidean_half",
      py::arg("class_penalty") = inf, py::arg("k") = 0, py::arg("sample") = false, py::arg("seed") = 0,
      py::arg("threads") = 0, py::arg("check_y") = true, py::arg("pca_basis") = py::none());
  m.def(
      "sdot_check",
      [make_map, run_check](py::handle y, py::handle g, py::object weights, py::object labels, double epsilon,
                            const std::string& cost, double class_penalty, int64_t batch, int64_t repeats,
                            uint64_t seed, int threads, py::object pca_basis) {
        auto a = make_map(y, g, weights, labels, epsilon, cost, class_penalty, true, pca_basis);
        return run_check(*a, batch, repeats, seed, threads);
      },
      py::arg("y"), py::arg("g"), py::arg("weights") = py::none(), py::arg("labels") = py::none(),
      py::arg("epsilon") = 0.0, py::arg("cost") = "sqeuclidean_half", py::arg("class_penalty") = inf,
      py::arg("batch") = 1024, py::arg("repeats") = 16, py::arg("seed") = 0, py::arg("threads") = 0,
      py::arg("pca_basis") = py::none());
  // A map prepared once (checked data, |y|^2, int8 screen) for many calls: what SemidiscreteOT keeps.
  struct MapHandle {
    std::unique_ptr<MapArgs> a;
  };
  py::class_<MapHandle>(m, "SdotMap")
      .def(py::init([make_map](py::handle y, py::handle g, py::object weights, py::object labels, double epsilon,
                               const std::string& cost, double class_penalty, bool check_y, int threads,
                               bool int8_screen, const std::string& engine_name, py::object pca_basis) {
             MapHandle h{make_map(y, g, weights, labels, epsilon, cost, class_penalty, check_y, pca_basis)};
             h.a->engine = engine_options(engine_name);
             h.a->engine.int8_screen = int8_screen;
             py::gil_scoped_release release;
             sdot_prepare(h.a->map, context(threads, 0), h.a->engine);
             return h;
           }),
           py::arg("y"), py::arg("g"), py::arg("weights") = py::none(), py::arg("labels") = py::none(),
           py::arg("epsilon") = 0.0, py::arg("cost") = "sqeuclidean_half", py::arg("class_penalty") = inf,
           py::arg("check_y") = true, py::arg("threads") = 0, py::arg("int8_screen") = true, py::arg("engine") = "auto",
           py::arg("pca_basis") = py::none())
      .def("assign",
           [run_assign](MapHandle& h, py::handle x, py::object x_labels, int64_t k, bool sample, uint64_t seed,
                        int threads) { return run_assign(*h.a, x, x_labels, k, sample, seed, threads); },
           py::arg("x"), py::arg("x_labels") = py::none(), py::arg("k") = 0, py::arg("sample") = false,
           py::arg("seed") = 0, py::arg("threads") = 0)
      .def("check",
           [run_check](MapHandle& h, int64_t batch, int64_t repeats, uint64_t seed, int threads) {
             return run_check(*h.a, batch, repeats, seed, threads);
           },
           py::arg("batch") = 1024, py::arg("repeats") = 16, py::arg("seed") = 0, py::arg("threads") = 0)
      .def_property_readonly("int8_screen", [](const MapHandle& h) { return sdot_int8_screen(h.a->map); })
      .def_property_readonly("engine",
                             [](const MapHandle& h) { return std::string(sdot_argmax_engine(h.a->map, h.a->engine)); });

  // ---- batch OT -------------------------------------------------------------------------------
  m.def(
      "exact_assignment",
      [](py::handle x, py::handle y, const std::string& solver, int threads) {
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
      },
      py::arg("x"), py::arg("y"), py::arg("solver") = "jv", py::arg("threads") = 0);
  m.def(
      "sinkhorn",
      [](py::handle x, py::handle y, py::object a, py::object b, double epsilon, bool relative_epsilon, double tol,
         int64_t max_iterations, int64_t check_every, bool eps_scaling, const std::string& mode, int threads) {
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
      },
      py::arg("x"), py::arg("y"), py::arg("a") = py::none(), py::arg("b") = py::none(), py::arg("epsilon") = 0.05,
      py::arg("relative_epsilon") = false, py::arg("tol") = 1e-4, py::arg("max_iterations") = 10000,
      py::arg("check_every") = 1, py::arg("eps_scaling") = true, py::arg("mode") = "auto", py::arg("threads") = 0);

  // ---- potential sidecars (otgen/potential_meta.h) --------------------------------------------
  m.def(
      "check_potential_meta",
      [](const std::string& path, py::handle y, py::object labels, py::object weights, double epsilon,
         const std::string& cost, double class_penalty) {
        auto Y = points(y, "y");
        I64 L = optional_i64(labels, "labels");
        F64 W = optional_f64(weights, "weights");
        const auto meta = potential_meta(Y.view, span_of_t(L), std::span<const double>(W.data(), W.size()), epsilon,
                                         parse_sdot_cost(cost, "cost"), class_penalty);
        return check_potential_meta(path, meta, "g", "allow_foreign_potential=True");
      },
      py::arg("path"), py::arg("y"), py::arg("labels") = py::none(), py::arg("weights") = py::none(),
      py::arg("epsilon") = 0.0, py::arg("cost") = "sqeuclidean_half", py::arg("class_penalty") = inf);
  m.def(
      "read_potential_basis",
      [](const std::string& path, int64_t d) -> py::object {
        std::vector<float> U = read_potential_basis(path, d, "g");
        if (U.empty()) return py::none();
        const auto k = static_cast<py::ssize_t>(U.size() / static_cast<size_t>(d));
        return owned(std::move(U), {k, d});
      },
      py::arg("path"), py::arg("d"));

  // ---- random streams (otgen/streams.h) -------------------------------------------------------
  m.def(
      "stream_key",
      [](uint64_t seed, const std::string& stream, uint64_t step) {
        if (stream == "noise") return stream_key(seed, Stream::Noise, step);
        if (stream == "assign") return stream_key(seed, Stream::Assign, step);
        value_error("stream: '" + stream + "', expected 'noise' or 'assign'");
      },
      py::arg("seed"), py::arg("stream"), py::arg("step") = 0);
  m.def(
      "noise",
      [](int64_t n, int64_t d, uint64_t seed, uint64_t step, int threads) {
        if (n < 0) value_error("n: " + std::to_string(n) + ", expected n >= 0");
        if (d < 1) value_error("d: " + std::to_string(d) + ", expected d >= 1");
        Points x;
        {
          py::gil_scoped_release release;
          x = sdot_noise(n, d, seed, context(threads, seed), step);
        }
        return owned(std::move(x.data), {n, d});
      },
      py::arg("n"), py::arg("d"), py::arg("seed") = 0, py::arg("step") = 0, py::arg("threads") = 0);
  m.def(
      "noise_classes",
      [](py::object class_weights, int64_t n, uint64_t seed, uint64_t step) {
        F64 W = optional_f64(class_weights, "class_weights");
        return owned(noise_classes(std::span<const double>(W.data(), W.size()), n, seed, step), {n});
      },
      py::arg("class_weights"), py::arg("n"), py::arg("seed") = 0, py::arg("step") = 0);

  // ---- couplings ------------------------------------------------------------------------------
  // A coupling owns (a reference to) its data arrays; sample() returns (target rows, labels or None).
  struct PyCoupling {
    PointsArg y;
    I64 labels;
    std::unique_ptr<Coupling> coupling;
  };
  py::class_<PyCoupling>(m, "Coupling")
      .def("sample",
           [](const PyCoupling& c, py::handle noise, py::object noise_labels, uint64_t seed, int threads) {
             auto X = points(noise, "noise");
             I64 NL = optional_i64(noise_labels, "noise_labels");
             Pairs p;
             {
               py::gil_scoped_release release;
               p = c.coupling->sample(X.view, span_of_t(NL), seed, context(threads, seed));
             }
             const auto n = static_cast<py::ssize_t>(p.target.size());
             py::object labels = py::none();
             if (!p.labels.empty()) labels = owned(std::move(p.labels), {n});
             return py::make_tuple(owned(std::move(p.target), {n}), labels);
           },
           py::arg("noise"), py::arg("noise_labels") = py::none(), py::arg("seed") = 0, py::arg("threads") = 0)
      .def_property_readonly("name", [](const PyCoupling& c) { return c.coupling->name(); })
      .def_property_readonly("class_weights", [](const PyCoupling& c) {
        std::vector<double> w = c.coupling->class_weights();
        const auto k = static_cast<py::ssize_t>(w.size());
        return owned(std::move(w), {k});
      });
  m.def(
      "make_coupling",
      [](const std::string& kind, py::handle y, py::object labels, int64_t num_classes, py::object g, py::object weights,
         double epsilon, bool relative_epsilon, bool round_to_permutation, py::object pca_basis) {
        auto c = std::make_unique<PyCoupling>(PyCoupling{points(y, "y"), optional_i64(labels, "labels"), nullptr});
        CouplingData data{c->y.view, span_of_t(c->labels), num_classes};
        if (kind == "independent") {
          c->coupling = std::make_unique<IndependentCoupling>(data);
        } else if (kind == "exact" || kind == "sinkhorn") {
          BatchOTOptions o;
          o.method = kind == "exact" ? BatchOTMethod::Exact : BatchOTMethod::Sinkhorn;
          if (kind == "sinkhorn") o.sinkhorn.epsilon = epsilon, o.sinkhorn.relative_epsilon = relative_epsilon;
          o.round_to_permutation = round_to_permutation;
          c->coupling = std::make_unique<BatchOTCoupling>(data, o);
        } else if (kind == "semidiscrete") {
          if (g.is_none()) value_error("g: None, expected the fitted potential for a semidiscrete coupling");
          F32 G = as_f32(g, "g", 1);
          F64 B = optional_f64(weights, "weights");
          std::vector<float> U;
          if (!pca_basis.is_none()) {
            F32 P = as_f32(pca_basis, "pca_basis", 2);
            U.assign(P.data(), P.data() + P.size());
          }
          c->coupling = std::make_unique<SemidiscreteCoupling>(
              data, std::vector<float>(G.data(), G.data() + G.size()), epsilon,
              std::vector<double>(B.data(), B.data() + B.size()), std::numeric_limits<double>::infinity(), std::move(U));
        } else {
          value_error("kind: '" + kind + "', expected 'independent', 'exact', 'sinkhorn' or 'semidiscrete'");
        }
        return c;
      },
      py::arg("kind"), py::arg("y"), py::arg("labels") = py::none(), py::arg("num_classes") = 0,
      py::arg("g") = py::none(), py::arg("weights") = py::none(), py::arg("epsilon") = 0.0,
      py::arg("relative_epsilon") = true, py::arg("round_to_permutation") = false, py::arg("pca_basis") = py::none());

  // ---- WFR samplers ---------------------------------------------------------------------------
  // target: a built-in name, or a Python object with batched log_prob(x) -> (n,) and grad_log_prob(x)
  // -> (n, d) taking float64 (n, d) arrays (called with the GIL held, once per step).
  m.def(
      "wfr_sample",
      [](py::object target, int64_t dim, double H, const std::string& sampler, int64_t n_particles, double step,
         int64_t steps, py::object init, std::optional<double> beta, std::optional<double> bandwidth,
         std::optional<std::string> bandwidth_rule, std::optional<double> ess_threshold, std::optional<std::string> resample,
         std::optional<bool> adaptive, std::optional<bool> mala_moves, std::optional<int> moves, uint64_t seed,
         int threads, bool progress, py::object callback) {
        std::unique_ptr<wfr::Target> t;
        if (py::isinstance<py::str>(target)) {
          t = wfr::make_target(target.cast<std::string>(), H, dim);
        } else {
          if (!py::hasattr(target, "log_prob") || !py::hasattr(target, "grad_log_prob"))
            value_error("target: expected a built-in name or an object with log_prob(x) and grad_log_prob(x)");
          if (dim < 1) value_error("dim: " + std::to_string(dim) + ", expected the target's dimension (>= 1)");
          t = std::make_unique<wfr::FunctionTarget>(
              dim,
              [target, dim](PointsView x, std::span<double> logp, std::span<double> grad) {
                py::gil_scoped_acquire acquire;
                py::array_t<double> xa({x.n, dim});
                for (int64_t k = 0; k < x.n * dim; ++k) xa.mutable_data()[k] = x.data[k];
                auto lp = F64::ensure(target.attr("log_prob")(xa));
                if (!lp || lp.size() != x.n) value_error("target.log_prob(x) must return n = " + std::to_string(x.n) + " values");
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
        wfr::SamplerSpec spec;  // None: the sampler's default (and not "given")
        spec.step = step, spec.beta = beta.value_or(spec.beta), spec.bandwidth = bandwidth;
        spec.ess_threshold = ess_threshold, spec.adaptive = adaptive.value_or(spec.adaptive);
        spec.mala_moves = mala_moves.value_or(spec.mala_moves), spec.moves = moves.value_or(spec.moves);
        const std::string rule = bandwidth_rule.value_or("silverman");
        if (rule == "silverman") spec.rule = wfr::BandwidthRule::Silverman;
        else if (rule == "scott") spec.rule = wfr::BandwidthRule::Scott;
        else value_error("bandwidth_rule: '" + rule + "', expected 'silverman' or 'scott'");
        spec.resample = wfr::parse_resample_scheme(resample.value_or("systematic"), "resample");
        auto s = wfr::make_sampler(sampler, spec);
        std::vector<std::string_view> given;
        for (auto [set, field] : {std::pair{beta.has_value(), "beta"}, {bandwidth.has_value(), "bandwidth"},
                                  {bandwidth_rule.has_value(), "bandwidth_rule"}, {ess_threshold.has_value(), "ess_threshold"},
                                  {resample.has_value(), "resample"}, {adaptive.has_value(), "adaptive"},
                                  {mala_moves.has_value(), "mala_moves"}, {moves.has_value(), "moves"}})
          if (set) given.push_back(field);
        wfr::require_sampler_options(sampler, given);
        Context ctx = context(threads, seed);
        Points x0;
        if (py::isinstance<py::str>(init)) {
          x0 = wfr::initial_particles(*t, init.cast<std::string>(), n_particles, seed);
        } else {
          auto X0 = points(init, "init");
          if (X0.view.d != t->dim()) value_error("init: dimension " + std::to_string(X0.view.d) + ", expected the target's " + std::to_string(t->dim()));
          x0 = Points(std::vector<float>(X0.view.data, X0.view.data + X0.view.n * X0.view.d), X0.view.n, X0.view.d);
        }
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
      },
      py::arg("target"), py::arg("dim") = 1, py::arg("H") = 6.0, py::arg("sampler") = "smc-wfr",
      py::arg("n_particles") = 300, py::arg("step") = 0.005, py::arg("steps") = 1000, py::arg("init") = "gaussian",
      py::arg("beta") = py::none(), py::arg("bandwidth") = py::none(), py::arg("bandwidth_rule") = py::none(),
      py::arg("ess_threshold") = py::none(), py::arg("resample") = py::none(), py::arg("adaptive") = py::none(),
      py::arg("mala_moves") = py::none(), py::arg("moves") = py::none(), py::arg("seed") = 0, py::arg("threads") = 0,
      py::arg("progress") = false, py::arg("callback") = py::none());

  // ---- weighted SDEs on flow fields (otgen/flow_sde.h) -----------------------------------------
  py::class_<FlowFieldFn>(m, "FlowField", "a velocity field for flow_sde (built in C++)");
  m.def(
      "gaussian_mixture_field",
      [](py::object means, py::object weights, py::object stds, py::object cond_weights) {
        auto mu = points(means, "means");
        const F64 w = optional_f64(weights, "weights"), s = optional_f64(stds, "stds"), cw = optional_f64(cond_weights, "cond_weights");
        std::vector<double> m(mu.view.data, mu.view.data + mu.view.n * mu.view.d);
        return gaussian_mixture_field(m, {w.data(), w.data() + w.size()}, {s.data(), s.data() + s.size()}, mu.view.d,
                                      {cw.data(), cw.data() + cw.size()});
      },
      py::arg("means"), py::arg("weights"), py::arg("stds"), py::arg("cond_weights") = py::none());
  m.def(
      "flow_sde",
      [](py::object field, int64_t n, int64_t dim, py::object reward, const std::string& tilt, int64_t steps,
         double noise, const std::string& schedule, double temperature, double guidance, double tilt_drift,
         bool weighted, double ess_threshold, const std::string& resample, bool final_resample, uint64_t seed) {
        FlowSdeOptions o;
        o.steps = steps, o.noise = noise, o.temperature = temperature, o.guidance = guidance;
        o.tilt_drift = tilt_drift, o.weighted = weighted, o.ess_threshold = ess_threshold;
        o.final_resample = final_resample;
        o.schedule = parse_noise_schedule(schedule, "noise_schedule");
        o.resample = wfr::parse_resample_scheme(resample, "resample");
        if (dim < 1) value_error("dim: " + std::to_string(dim) + ", expected the field's dimension (>= 1)");
        FlowFieldFn f;
        if (py::isinstance<FlowFieldFn>(field)) {
          f = field.cast<FlowFieldFn>();
        } else {
          if (!PyCallable_Check(field.ptr())) value_error("field: expected a FlowField or a callable");
          // field(t, x, divergence, guidance) -> dict with "v" (or "v_cond" and "v_null"), optional
          // "div" and "nfe".
          f = [field, dim](double t, PointsView x, const FlowFieldRequest& req, FlowFieldValues& out) -> int64_t {
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
        LogRewardFn rw;
        if (!reward.is_none()) {
          if (!tilt.empty()) value_error("tilt: given with log_reward, expected one of them");
          if (!PyCallable_Check(reward.ptr())) value_error("log_reward: expected a callable");
          rw = [reward, dim](PointsView x, std::span<double> r, std::span<double> grad, std::span<double> lap) {
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
        } else if (!tilt.empty()) {
          rw = parse_log_reward(tilt, dim, "tilt");
        }
        FlowSdeResult r;
        {
          py::gil_scoped_release release;
          r = sample_flow_sde(f, n, dim, rw, o, seed);
        }
        if (r.termination == Termination::NumericalFailure) value_error("flow_sde: " + r.message);
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
      },
      py::arg("field"), py::arg("n"), py::arg("dim"), py::arg("log_reward") = py::none(), py::arg("tilt") = "",
      py::arg("steps") = 100, py::arg("noise") = 1.0, py::arg("noise_schedule") = "sqrt", py::arg("temperature") = 1.0,
      py::arg("guidance") = 1.0, py::arg("tilt_drift") = 0.0, py::arg("weighted") = true, py::arg("ess_threshold") = 0.5,
      py::arg("resample") = "systematic", py::arg("final_resample") = true, py::arg("seed") = 0);
}
