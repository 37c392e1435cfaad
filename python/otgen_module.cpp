// The otgen Python module (_otgen): the boundary helpers of python/bindings.h and the module, whose
// contents the python/bind_<layer>.cpp files register. Boundary only: otgen::Error becomes ValueError
// (bind_core). No numerical logic lives here.
#include <chrono>
#include <string>

#include "bindings.h"
#include "otgen/core/cpu_features.h"
#include "otgen/core/progress.h"
#ifdef OTGEN_WITH_MPI
#include "otgen/dist/dist.h"
#endif

using namespace otgen;

namespace otgen::bindings {

void value_error(const std::string& msg) { throw py::value_error(msg); }

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
    value_error(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array, got " +
                std::to_string(a.ndim()) + "-D with shape " + std::string(py::str(py::tuple(a.attr("shape")))));
  return F32::ensure(a);
}

PointsArg points(py::handle obj, const char* name, bool check_finite) {
  PointsArg p{as_f32(obj, name, 2), {}};
  p.view = {p.array.data(), p.array.shape(0), p.array.shape(1)};
  if (check_finite) require_finite(p.view, name);
  return p;
}

F32 optional_vector(const py::object& obj, const char* name) {
  if (obj.is_none()) return F32(0);
  return as_f32(obj, name, 1);
}

Context context(int threads, uint64_t seed) {
  Context ctx;
  ctx.threads = threads;
  ctx.seed = seed;
  ctx.quiet = true;
  ctx.validate();
  return ctx;
}

const Communicator* python_world() {
#ifdef OTGEN_WITH_MPI
  // MPI_Finalize runs with the static destructors at the interpreter's exit.
  static const std::unique_ptr<dist::MpiWorld> world =
      dist::launched_by_mpirun() ? std::make_unique<dist::MpiWorld>(nullptr, nullptr) : nullptr;
  if (world && world->world().size() > 1) return &world->world();
#endif
  return nullptr;
}

Shard::Shard(int64_t n) : world(python_world()), rows{0, n} {
  if (world) rows = row_range(n, world->rank(), world->size());
}

Context Shard::on(Context ctx) const {
  ctx.comm = world;
  if (world && world->rank() != 0) ctx.quiet = true, ctx.on_progress = {};
  return ctx;
}

ScoreOptions engine_options(const std::string& name) {
  ScoreOptions opt;
  opt.path = parse_engine_path(name, "engine");
  require_engine_path(opt.path, "engine");
  return opt;
}

ProgressCallback python_progress(py::handle fn) {
  if (fn.is_none()) return {};
  return [fn](const ProgressEvent& e) {
    py::gil_scoped_acquire acquire;
    py::dict metrics;
    for (const auto& [name, value] : e.metrics) metrics[py::str(name)] = value;
    fn(e.done, e.total, metrics);
  };
}

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

F64 optional_f64(const py::object& obj, const char* name) {
  if (obj.is_none()) return F64(0);
  py::array a = py::array::ensure(obj);
  if (!a || (a.dtype().kind() != 'f' && a.dtype().kind() != 'i' && a.dtype().kind() != 'u') || a.ndim() != 1)
    value_error(std::string(name) + ": expected a 1-D real array");
  return F64::ensure(a);
}

I64 optional_i64(const py::object& obj, const char* name) {
  if (obj.is_none()) return I64(0);
  py::array a = py::array::ensure(obj);
  if (!a || (a.dtype().kind() != 'i' && a.dtype().kind() != 'u') || a.ndim() != 1)
    value_error(std::string(name) + ": expected a 1-D integer array");
  I64 l = I64::ensure(a);
  require_labels(std::span<const int64_t>(l.data(), static_cast<size_t>(l.size())), name);  // >= 0, fits in memory
  return l;
}

py::object optional_value(const std::optional<double>& v) { return v ? py::object(py::float_(*v)) : py::none(); }

}  // namespace otgen::bindings

PYBIND11_MODULE(_otgen, m) {
  using namespace otgen::bindings;
  m.doc() = "otgen compiled core (use the otgen package)";
  python_world();  // under mpirun: MPI starts now, in the importing thread
  m.def("world_rank", [] { return python_world() ? python_world()->rank() : 0; }, "This process's rank (0 alone).");
  m.def("world_size", [] { return python_world() ? python_world()->size() : 1; },
        "The ranks of an mpirun launch (1 without mpirun or without MPI in the build).");
  bind_core(m);
  bind_data(m);
  bind_kernels(m);
  bind_ot(m);
  bind_coupling(m);
  bind_metrics(m);
  bind_wfr(m);
  bind_flow(m);
}
