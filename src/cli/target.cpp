#include "cli/target.h"

#include <algorithm>

#include "otgen/core/error.h"
#include "otgen/core/npy.h"
#include "otgen/ot/potential_meta.h"

namespace otgen::cli {
namespace {

// The first dimension of the .npy at `path`, naming `argument` in errors.
int64_t rows_of(const std::string& path, const std::string& argument) {
  try {
    return npy_rows(path);
  } catch (const Error& e) {
    throw Error(argument + ": " + e.what());
  }
}

void require_length(const std::string& argument, int64_t have, int64_t total, const std::string& what) {
  require(have == total, argument, "length " + std::to_string(have), what + " (" + std::to_string(total) + ")");
}

}  // namespace

void Target::load(const Communicator& comm) {
  collectively(comm, [&] {
    total = comm.size() == 1 ? -1 : rows_of(data, "--data");
    rows = comm.size() == 1 ? RowRange{0, -1} : row_range(total, comm.rank(), comm.size());
    y = read_points_npy_rows(data, "--data", rows.begin, rows.end);
    if (comm.size() == 1) total = y.n, rows.end = y.n;
    if (!weights.empty()) {
      if (comm.size() > 1) require_length("--weights", rows_of(weights, "--weights"), total, "one weight per data point");
      b = read_vector_npy_rows(weights, "--weights", rows.begin, rows.end);
      require_length("--weights", static_cast<int64_t>(b.size()), y.n, "one weight per data point");
    }
    if (!labels.empty()) {
      if (comm.size() > 1) require_length("--labels", rows_of(labels, "--labels"), total, "one label per data point");
      l = read_int64_npy_rows(labels, "--labels", rows.begin, rows.end);
      require_labels(l, "--labels ('" + labels + "')");
      require_length("--labels", static_cast<int64_t>(l.size()), y.n, "one label per data point");
    }
  });
}

std::vector<float> Target::potential(const std::string& path, const std::string& argument,
                                     const Communicator& comm) const {
  std::vector<float> g;
  collectively(comm, [&] {
    if (comm.size() > 1) require_length(argument, rows_of(path, argument), total, "one value per data point");
    const auto v = read_vector_npy_rows(path, argument, rows.begin, comm.size() > 1 ? rows.end : -1);
    require_length(argument, static_cast<int64_t>(v.size()), y.n, "one value per data point");
    g.assign(v.begin(), v.end());
  });
  return g;
}

nlohmann::json Target::meta(double epsilon, SdotCost cost, double class_penalty, const Communicator& comm) const {
  if (comm.size() == 1) return potential_meta(y, l, b, epsilon, cost, class_penalty);
  const std::vector<double> b_all = allgather<double>(comm, b);
  const std::vector<int64_t> l_all = allgather<int64_t>(comm, l);
  nlohmann::json m;
  collectively(comm, [&] {
    if (comm.rank() != 0) return;
    ContentHash h;
    constexpr int64_t kChunk = 4096;  // rows per read
    for (int64_t r = 0; r < total; r += kChunk) {
      const Points part = read_points_npy_rows(data, "--data", r, std::min(total, r + kChunk));
      h.add(part.data.data(), part.data.size() * sizeof(float));
    }
    m = potential_meta(total, y.d, h.hex(), l_all, b_all, epsilon, cost, class_penalty);
  });
  return m;
}

}  // namespace otgen::cli
