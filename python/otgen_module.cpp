// The one binding file of the otgen Python module (_otgen). Boundary only: arrays are taken as float32
// C-contiguous (no copy when they already are; other real dtypes converted once), validated before the
// GIL is released, and results are returned as numpy arrays owned by capsules. otgen::Error becomes
// ValueError. No numerical logic lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "otgen/data.h"
#include "otgen/error.h"
#include "otgen/metrics.h"
#include "otgen/scores.h"
#include "otgen/version.h"

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
  if (a.ndim() != ndim)
    value_error(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array, got " + std::to_string(a.ndim()) +
                "-D with shape " + std::string(py::str(py::tuple(a.attr("shape")))));
  return F32::ensure(a);
}

struct PointsArg {
  F32 array;
  PointsView view;
};

PointsArg points(py::handle obj, const char* name) {
  PointsArg p{as_f32(obj, name, 2), {}};
  p.view = {p.array.data(), p.array.shape(0), p.array.shape(1)};
  require_finite(p.view, name);
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
      [](py::handle x, py::handle y, py::object h, int threads) {
        auto X = points(x, "x"), Y = points(y, "y");
        F32 H = optional_vector(h, "h");
        std::vector<int64_t> idx(X.view.n);
        std::vector<float> val(X.view.n);
        {
          py::gil_scoped_release release;
          row_argmax(problem(X, Y, H), idx, val, context(threads));
        }
        const auto n = X.view.n;
        return py::make_tuple(owned(std::move(idx), {n}), owned(std::move(val), {n}));
      },
      py::arg("x"), py::arg("y"), py::arg("h") = py::none(), py::arg("threads") = 0);
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
}
