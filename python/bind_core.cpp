// The core layer in Python: the version, otgen::Error as ValueError, the CPU's features and the random
// streams (otgen/core/streams.h).
#include <exception>
#include <string>

#include "bindings.h"
#include "otgen/core/cpu_features.h"
#include "otgen/core/error.h"
#include "otgen/core/streams.h"
#include "otgen/core/version.h"

using namespace otgen;

namespace otgen::bindings {

namespace {

uint64_t py_stream_key(uint64_t seed, const std::string& stream, uint64_t step) {
  if (stream == "noise") return stream_key(seed, Stream::Noise, step);
  if (stream == "assign") return stream_key(seed, Stream::Assign, step);
  value_error("stream: '" + stream + "', expected 'noise' or 'assign'");
}

}  // namespace

void bind_core(py::module_& m) {
  m.attr("__version__") = OTGEN_VERSION_STRING;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  m.def("cpu_features", [] { return cpu_features().summary(); },
        "The instruction sets the engine may use on this CPU (cpuid + OS state), space-separated.");
  m.def("stream_key", &py_stream_key, py::arg("seed"), py::arg("stream"), py::arg("step") = 0);
}

}  // namespace otgen::bindings
