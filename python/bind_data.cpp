// The data layer in Python: the built-in and file datasets (otgen/data/data.h).
#include <string>

#include "bindings.h"
#include "otgen/data/data.h"

using namespace otgen;

namespace otgen::bindings {

namespace {

py::tuple py_load_dataset(const std::string& name, int64_t n, uint64_t seed, bool shuffle, bool test_split,
                          const std::string& path, const std::string& labels_path) {
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
}

}  // namespace

void bind_data(py::module_& m) {
  m.def("dataset_names", &dataset_names);
  m.def("load_dataset", &py_load_dataset, py::arg("name"), py::arg("n") = 0, py::arg("seed") = 0,
        py::arg("shuffle") = false, py::arg("test_split") = false, py::arg("path") = "", py::arg("labels_path") = "");
}

}  // namespace otgen::bindings
