#include "otgen/core/points.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "otgen/core/error.h"
#include "otgen/core/memory.h"

namespace otgen {

Points::Points(std::vector<float> values, int64_t n_, int64_t d_) : data(std::move(values)), n(n_), d(d_) {
  require(n_ >= 0 && d_ >= 0 && static_cast<int64_t>(data.size()) == n_ * d_, "points",
          std::to_string(data.size()) + " values", "n * d = " + std::to_string(n_ * d_) + " values");
}

int64_t require_labels(std::span<const int64_t> labels, std::string_view argument) {
  int64_t top = -1;
  for (size_t i = 0; i < labels.size(); ++i) {
    require(labels[i] >= 0, argument, labels[i], "labels >= 0 (entry " + std::to_string(i) + ")");
    top = std::max(top, labels[i]);
  }
  require(top < std::numeric_limits<int64_t>::max(), argument, top, "labels below 2^63 - 1");
  const int64_t classes = top + 1;
  require_memory(argument, "largest label " + std::to_string(top), 64.0 * static_cast<double>(classes),
                 std::to_string(classes) + " classes (per-class arrays, about 64 bytes a class)");
  return classes;
}

namespace {

// True if any value is NaN or infinite: the exponent bits all set. Branch-free over chunks so the
// compiler vectorises it (memory speed on large arrays); the slow loop below only runs to name the
// offending value.
bool any_nonfinite(std::span<const float> v) {
  const auto* bits = reinterpret_cast<const uint32_t*>(v.data());
  constexpr size_t chunk = 4096;
  for (size_t start = 0; start < v.size(); start += chunk) {
    const size_t end = std::min(v.size(), start + chunk);
    uint32_t bad = 0;
    for (size_t k = start; k < end; ++k) bad |= static_cast<uint32_t>((bits[k] & 0x7f800000u) == 0x7f800000u);
    if (bad) return true;
  }
  return false;
}
bool any_nonfinite(std::span<const double> v) {
  for (double x : v)
    if (!std::isfinite(x)) return true;
  return false;
}

template <class T>
void check_finite(std::span<const T> v, std::string_view argument, int64_t d, int64_t first) {
  if (!any_nonfinite(v)) return;
  for (size_t k = 0; k < v.size(); ++k) {
    if (!std::isfinite(v[k])) {
      const int64_t at = static_cast<int64_t>(k);
      std::string where = d > 0 ? "row " + std::to_string(first + at / d) + ", column " + std::to_string(at % d)
                                : "index " + std::to_string(first + at);
      fail_argument(argument, to_text(v[k]) + " at " + where, "finite values (no NaN or infinity)");
    }
  }
}
}  // namespace

void require_finite(PointsView x, std::string_view argument, int64_t first) { check_finite(x.values(), argument, x.d, first); }
void require_finite(std::span<const float> v, std::string_view argument, int64_t first) { check_finite(v, argument, 0, first); }
void require_finite(std::span<const double> v, std::string_view argument, int64_t first) { check_finite(v, argument, 0, first); }

std::vector<float> squared_norms(PointsView x) {
  std::vector<float> out(static_cast<size_t>(x.n));
  for (int64_t i = 0; i < x.n; ++i) {
    double s = 0;
    const float* r = x.row(i);
    for (int64_t k = 0; k < x.d; ++k) s += static_cast<double>(r[k]) * r[k];
    out[i] = static_cast<float>(s);
  }
  return out;
}

}  // namespace otgen
