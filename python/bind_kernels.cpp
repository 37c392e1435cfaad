// The kernels layer in Python: the score engine's row reductions (otgen/kernels/scores.h) and the int8 screen's
// CPU check (otgen/kernels/lattice.h).
#include <string>
#include <vector>

#include "bindings.h"
#include "otgen/core/cpu_features.h"
#include "otgen/kernels/lattice.h"

using namespace otgen;

namespace otgen::bindings {

namespace {

ScoreProblem problem(const PointsArg& x, const PointsArg& y, const F32& h) { return {x.view, y.view, span_of(h)}; }

auto py_row_argmax(py::handle x, py::handle y, py::object h, int threads, const std::string& engine) {
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
}

auto py_argmax_engine(int64_t d, const std::string& engine, int64_t m) {
  return std::string(engine_path_name(argmax_path(m, d, engine_options(engine))));
}

auto py_row_logsumexp(py::handle x, py::handle y, py::object h, float scale, py::object log_b, int threads) {
  auto X = points(x, "x"), Y = points(y, "y");
  F32 H = optional_vector(h, "h"), LB = optional_vector(log_b, "log_b");
  std::vector<float> lse(X.view.n);
  {
    py::gil_scoped_release release;
    row_logsumexp(problem(X, Y, H), scale, span_of(LB), lse, context(threads));
  }
  return owned(std::move(lse), {X.view.n});
}

auto py_row_topk(py::handle x, py::handle y, int64_t k, py::object h, int threads, const std::string& engine) {
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
}

auto py_softmax_column_sums(py::handle x, py::handle y, py::object h, float scale, py::object log_b, int threads) {
  auto X = points(x, "x"), Y = points(y, "y");
  F32 H = optional_vector(h, "h"), LB = optional_vector(log_b, "log_b");
  std::vector<double> cols(Y.view.n);
  std::vector<float> lse(X.view.n);
  {
    py::gil_scoped_release release;
    softmax_column_sums(problem(X, Y, H), scale, span_of(LB), cols, lse, context(threads));
  }
  return py::make_tuple(owned(std::move(cols), {Y.view.n}), owned(std::move(lse), {X.view.n}));
}

auto py_row_gumbel_argmax(py::handle x, py::handle y, py::object h, float scale, py::object log_b, uint64_t seed,
                          int threads) {
  auto X = points(x, "x"), Y = points(y, "y");
  F32 H = optional_vector(h, "h"), LB = optional_vector(log_b, "log_b");
  std::vector<int64_t> idx(X.view.n);
  {
    py::gil_scoped_release release;
    row_gumbel_argmax(problem(X, Y, H), scale, span_of(LB), seed, idx, context(threads));
  }
  return owned(std::move(idx), {X.view.n});
}

auto py_kernel_row_logsumexp(py::handle x, py::handle y, double alpha, py::object log_w, int threads) {
  auto X = points(x, "x"), Y = points(y, "y");
  F32 LW = optional_vector(log_w, "log_w");
  std::vector<float> out(X.view.n);
  {
    py::gil_scoped_release release;
    kernel_row_logsumexp(X.view, Y.view, alpha, span_of(LW), out, context(threads));
  }
  return owned(std::move(out), {X.view.n});
}

}  // namespace

void bind_kernels(py::module_& m) {
  m.def("row_argmax", &py_row_argmax, py::arg("x"), py::arg("y"), py::arg("h") = py::none(), py::arg("threads") = 0,
        py::arg("engine") = "auto");
  m.def("argmax_engine", &py_argmax_engine, py::arg("d"), py::arg("engine") = "auto", py::arg("m") = int64_t{1} << 40,
        "The path row_argmax takes for m columns (default: a large set) of dimension d under engine= "
        "('fp32', 'vnni', 'avx512bf16' or 'amx').");
  m.def("row_logsumexp", &py_row_logsumexp, py::arg("x"), py::arg("y"), py::arg("h") = py::none(),
        py::arg("scale") = 1.0f, py::arg("log_b") = py::none(), py::arg("threads") = 0);
  m.def("row_topk", &py_row_topk, py::arg("x"), py::arg("y"), py::arg("k"), py::arg("h") = py::none(),
        py::arg("threads") = 0, py::arg("engine") = "auto");
  m.def("softmax_column_sums", &py_softmax_column_sums, py::arg("x"), py::arg("y"), py::arg("h") = py::none(),
        py::arg("scale") = 1.0f, py::arg("log_b") = py::none(), py::arg("threads") = 0);
  m.def("row_gumbel_argmax", &py_row_gumbel_argmax, py::arg("x"), py::arg("y"), py::arg("h") = py::none(),
        py::arg("scale") = 1.0f, py::arg("log_b") = py::none(), py::arg("seed") = 0, py::arg("threads") = 0);
  m.def("kernel_row_logsumexp", &py_kernel_row_logsumexp, py::arg("x"), py::arg("y"), py::arg("alpha"),
        py::arg("log_w") = py::none(), py::arg("threads") = 0);
  m.def("int8_screen_supported", &LatticeColumns::cpu_supported,
        "Whether this CPU has the instructions of the exact int8 screen (AVX-512 F, BW, VNNI).");
}

}  // namespace otgen::bindings
