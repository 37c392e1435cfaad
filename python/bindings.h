// Internal to the otgen Python module (_otgen): the boundary helpers the binding files share and one
// bind_<layer> function per library layer (python/bind_<layer>.cpp), called by python/otgen_module.cpp.
// Arrays are taken as float32 C-contiguous (no copy when they already are; other real dtypes converted
// once), validated before the GIL is released, and results are returned as numpy arrays owned by capsules.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // in every binding file: the same casters for std:: types everywhere

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "otgen/core/communicator.h"
#include "otgen/core/context.h"
#include "otgen/core/points.h"
#include "otgen/kernels/scores.h"

namespace py = pybind11;

namespace otgen::bindings {

// The module's contents, one function per library layer (the layers of docs/ARCHITECTURE.md). Called in
// this order: a class is registered before the functions whose signatures name it.
void bind_core(py::module_& m);      // version, errors, CPU features, random streams
void bind_data(py::module_& m);      // datasets
void bind_kernels(py::module_& m);   // the score engine
void bind_ot(py::module_& m);        // semidiscrete OT, batch OT, PCA bases, potential sidecars
void bind_coupling(py::module_& m);  // couplings
void bind_metrics(py::module_& m);   // metrics and the evaluation driver
void bind_wfr(py::module_& m);       // WFR samplers
void bind_flow(py::module_& m);      // weighted SDEs on flow fields (otgen/wfr/flow_sde.h)

using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;
using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

[[noreturn]] void value_error(const std::string& msg);

// A float32 C-contiguous view of `obj` (converted once if needed) that must be real-valued and have
// `ndim` dimensions. The returned array keeps the data alive.
F32 as_f32(py::handle obj, const char* name, int ndim);

struct PointsArg {
  F32 array;
  PointsView view;
};

// check_finite = false only for arrays the caller validated before (e.g. a fitted solver's data).
PointsArg points(py::handle obj, const char* name, bool check_finite = true);

inline std::span<const float> span_of(const F32& a) { return {a.data(), static_cast<size_t>(a.size())}; }

template <class A>
auto span_of_t(const A& a) {
  using T = typename std::remove_const_t<std::remove_pointer_t<decltype(a.data())>>;
  return std::span<const T>(a.data(), static_cast<size_t>(a.size()));
}

// Optional 1-D float vector (None -> empty).
F32 optional_vector(const py::object& obj, const char* name);
// Optional 1-D float64 vector (weights); None -> empty.
F64 optional_f64(const py::object& obj, const char* name);
// Optional 1-D int64 vector (labels); None -> empty. Floats are rejected (labels are integers).
I64 optional_i64(const py::object& obj, const char* name);

// A numpy array that owns `values` through a capsule.
template <class T>
py::array_t<T> owned(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  auto holder = std::make_unique<std::vector<T>>(std::move(values));
  T* data = holder->data();
  py::capsule capsule(holder.get(), [](void* p) { delete static_cast<std::vector<T>*>(p); });
  holder.release();
  return py::array_t<T>(shape, data, capsule);
}

py::object optional_value(const std::optional<double>& v);

Context context(int threads, uint64_t seed = 0);

// Under mpirun with more than one rank (a build with OTGEN_MPI): the MPI world, initialised when the
// module is imported (MPI_THREAD_FUNNELED: call otgen from the importing thread); null otherwise. The
// semidiscrete calls (fit, SdotMap: assign, sample, check) then shard: every rank passes the whole
// arrays, works on its row range of the data (docs/dist.md) and returns the whole result.
const Communicator* python_world();

// The part of a semidiscrete problem's arrays this rank works on: rows [rows.begin, rows.end) of y and
// of the per-point weights, labels and potentials (all of them without a world).
struct Shard {
  const Communicator* world = nullptr;
  RowRange rows;
  explicit Shard(int64_t n);
  PointsView of(PointsView y) const { return {y.row(rows.begin), rows.count(), y.d}; }
  template <class T>
  std::span<const T> of(std::span<const T> v) const {
    return v.empty() ? v : v.subspan(static_cast<size_t>(rows.begin), static_cast<size_t>(rows.count()));
  }
  // ctx with the world (rank 0 alone reports progress).
  Context on(Context ctx) const;
};

// engine= of the Python API: a path name (otgen/core/cpu_features.h) the CPU can run; ValueError naming `engine`.
ScoreOptions engine_options(const std::string& name);

// A progress callback calling fn(step, total, metrics) with the GIL held; fn is borrowed (the caller's
// argument keeps it alive during the call). None: no callback. A Python exception in fn ends the run
// and is raised by the call.
ProgressCallback python_progress(py::handle fn);

// Context::should_stop for long calls made without the GIL: a pending Python signal whose handler raises
// (Ctrl-C: KeyboardInterrupt) ends the call with that exception. Checked at most every 50 ms.
std::function<bool()> python_signals();

}  // namespace otgen::bindings
