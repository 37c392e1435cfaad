// The metrics layer in Python: the sample-quality metrics (otgen/metrics/metrics.h) and the evaluation driver
// (otgen/metrics/evaluation.h).
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "otgen/metrics/evaluation.h"
#include "otgen/metrics/metrics.h"

using namespace otgen;

namespace otgen::bindings {

namespace {

auto py_energy_distance(py::handle x, py::handle y, int threads) {
  auto X = points(x, "x"), Y = points(y, "y");
  py::gil_scoped_release release;
  return energy_distance(X.view, Y.view, context(threads));
}

auto py_mmd2(py::handle x, py::handle y, std::vector<double> gammas, bool biased, int threads) {
  auto X = points(x, "x"), Y = points(y, "y");
  py::gil_scoped_release release;
  return mmd2(X.view, Y.view, gammas, biased, context(threads));
}

auto py_sliced_w2(py::handle x, py::handle y, int64_t projections, uint64_t seed) {
  auto X = points(x, "x"), Y = points(y, "y");
  py::gil_scoped_release release;
  return sliced_w2(X.view, Y.view, projections, seed);
}

auto py_mean_marginal_w1(py::handle x, py::handle y) {
  auto X = points(x, "x"), Y = points(y, "y");
  py::gil_scoped_release release;
  return mean_marginal_w1(X.view, Y.view);
}

auto py_frechet_distance(py::handle x, py::handle y) {
  auto X = points(x, "x"), Y = points(y, "y");
  py::gil_scoped_release release;
  return frechet_distance(X.view, Y.view);
}

auto py_exact_w2(py::handle x, py::handle y, int64_t max_points, uint64_t seed, int threads) {
  auto X = points(x, "x"), Y = points(y, "y");
  const Context ctx = context(threads);
  py::gil_scoped_release release;
  const ExactW2 r = exact_w2(X.view, Y.view, max_points, seed, ctx);
  return std::make_pair(r.w2, r.points);
}

auto py_precision_recall(py::handle x_real, py::handle x_fake, int64_t k, int threads) {
  auto R = points(x_real, "x_real"), F = points(x_fake, "x_fake");
  const Context ctx = context(threads);
  py::gil_scoped_release release;
  const PrecisionRecall pr = precision_recall(R.view, F.view, k, ctx);
  return std::make_pair(pr.precision, pr.recall);
}

auto py_frechet_distance_pca(py::handle x, py::handle y, py::handle train, std::optional<int64_t> dim) {
  auto X = points(x, "x"), Y = points(y, "y"), T = points(train, "train");
  py::gil_scoped_release release;
  const PcaBasis b = pca_basis(T.view, dim);
  return frechet_distance(X.view, Y.view, b);
}

auto py_median_distance(py::handle x, py::handle y, int64_t per_side) {
  auto X = points(x, "x"), Y = points(y, "y");
  py::gil_scoped_release release;
  return median_distance(X.view, Y.view, per_side);
}

auto py_mmd2_per_bandwidth(py::handle x, py::handle y, std::vector<double> gammas, int threads) {
  auto X = points(x, "x"), Y = points(y, "y");
  const Context ctx = context(threads);
  py::gil_scoped_release release;
  return mmd2_per_bandwidth(X.view, Y.view, gammas, ctx);
}

auto py_bootstrap_indices(int64_t n, uint64_t seed, int64_t replicate, int side) {
  return owned(bootstrap_indices(n, seed, replicate, side), {n});
}

// The JSON document of otgen eval, as a string (otgen.metrics.evaluate parses it).
auto py_evaluate(py::handle samples, py::handle reference, std::vector<std::string> metrics, py::object pca_data,
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
}

}  // namespace

void bind_metrics(py::module_& m) {
  m.def("energy_distance", &py_energy_distance, py::arg("x"), py::arg("y"), py::arg("threads") = 0);
  m.def("mmd2", &py_mmd2, py::arg("x"), py::arg("y"), py::arg("gammas"), py::arg("biased") = false,
        py::arg("threads") = 0);
  m.def("sliced_w2", &py_sliced_w2, py::arg("x"), py::arg("y"), py::arg("projections") = 128, py::arg("seed") = 0);
  m.def("mean_marginal_w1", &py_mean_marginal_w1, py::arg("x"), py::arg("y"));
  m.def("frechet_distance", &py_frechet_distance, py::arg("x"), py::arg("y"));
  m.def("exact_w2", &py_exact_w2, py::arg("x"), py::arg("y"), py::arg("max_points") = 2048, py::arg("seed") = 0,
        py::arg("threads") = 0);
  m.def("precision_recall", &py_precision_recall, py::arg("x_real"), py::arg("x_fake"), py::arg("k") = 3,
        py::arg("threads") = 0);
  m.def("frechet_distance_pca", &py_frechet_distance_pca, py::arg("x"), py::arg("y"), py::arg("train"),
        py::arg("dim") = py::none());
  m.def("median_distance", &py_median_distance, py::arg("x"), py::arg("y"), py::arg("per_side") = 500);
  m.def("mmd2_per_bandwidth", &py_mmd2_per_bandwidth, py::arg("x"), py::arg("y"), py::arg("gammas"),
        py::arg("threads") = 0);
  m.def("bootstrap_indices", &py_bootstrap_indices, py::arg("n"), py::arg("seed"), py::arg("replicate"),
        py::arg("side"));
  m.def("evaluate", &py_evaluate, py::arg("samples"), py::arg("reference"), py::arg("metrics"), py::arg("pca_data"),
        py::arg("pca_dim"), py::arg("bootstrap"), py::arg("projections"), py::arg("max_points"), py::arg("k"),
        py::arg("mmd_scales"), py::arg("level"), py::arg("keep_replicates"), py::arg("seed"), py::arg("threads"));
}

}  // namespace otgen::bindings
