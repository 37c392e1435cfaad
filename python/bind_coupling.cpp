// The coupling layer in Python: the Coupling class (independent, batch OT, semidiscrete) and make_coupling.
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bindings.h"
#include "otgen/coupling/coupling.h"

using namespace otgen;

namespace otgen::bindings {

namespace {

// A coupling owns (a reference to) its data arrays; sample() returns (target rows, labels or None).
struct PyCoupling {
  PointsArg y;
  I64 labels;
  std::unique_ptr<Coupling> coupling;
};

py::tuple coupling_sample(const PyCoupling& c, py::handle noise, py::object noise_labels, uint64_t seed, int threads) {
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
}

std::unique_ptr<PyCoupling> py_make_coupling(const std::string& kind, py::handle y, py::object labels,
                                             int64_t num_classes, py::object g, py::object weights, double epsilon,
                                             bool relative_epsilon, bool round_to_permutation, py::object pca_basis) {
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
}

}  // namespace

void bind_coupling(py::module_& m) {
  py::class_<PyCoupling>(m, "Coupling")
      .def("sample", &coupling_sample, py::arg("noise"), py::arg("noise_labels") = py::none(), py::arg("seed") = 0,
           py::arg("threads") = 0)
      .def_property_readonly("name", [](const PyCoupling& c) { return c.coupling->name(); })
      .def_property_readonly("class_weights", [](const PyCoupling& c) {
        std::vector<double> w = c.coupling->class_weights();
        const auto k = static_cast<py::ssize_t>(w.size());
        return owned(std::move(w), {k});
      });
  m.def("make_coupling", &py_make_coupling, py::arg("kind"), py::arg("y"), py::arg("labels") = py::none(),
        py::arg("num_classes") = 0, py::arg("g") = py::none(), py::arg("weights") = py::none(),
        py::arg("epsilon") = 0.0, py::arg("relative_epsilon") = true, py::arg("round_to_permutation") = false,
        py::arg("pca_basis") = py::none());
}

}  // namespace otgen::bindings
