#include "ot/weights.h"

#include <cmath>
#include <string>

#include "otgen/core/error.h"

namespace otgen {

std::vector<double> checked_weights(std::span<const double> w, int64_t n, const char* name) {
  if (w.empty()) return std::vector<double>(n, 1.0 / static_cast<double>(n));
  require(static_cast<int64_t>(w.size()) == n, name, "length " + std::to_string(w.size()), "length " + std::to_string(n));
  double s = 0;
  for (size_t k = 0; k < w.size(); ++k) {
    if (!(std::isfinite(w[k]) && w[k] >= 0))
      fail_argument(name, to_text(w[k]) + " at index " + std::to_string(k), "non-negative finite weights");
    s += w[k];
  }
  require(std::abs(s - 1.0) <= 1e-6, name, "sum " + to_text(s), "weights summing to 1 (within 1e-6)");
  std::vector<double> out(w.begin(), w.end());
  for (double& v : out) v /= s;
  return out;
}

}  // namespace otgen
