#include "otgen/points.h"

#include <cmath>
#include <string>

#include "otgen/error.h"

namespace otgen {

Points::Points(std::vector<float> values, int64_t n_, int64_t d_) : data(std::move(values)), n(n_), d(d_) {
  require(n_ >= 0 && d_ >= 0 && static_cast<int64_t>(data.size()) == n_ * d_, "points",
          std::to_string(data.size()) + " values", "n * d = " + std::to_string(n_ * d_) + " values");
}

namespace {
template <class T>
void check_finite(std::span<const T> v, std::string_view argument, int64_t d) {
  for (size_t k = 0; k < v.size(); ++k) {
    if (!std::isfinite(v[k])) {
      std::string where = d > 0 ? "row " + std::to_string(k / d) + ", column " + std::to_string(k % d)
                                : "index " + std::to_string(k);
      fail_argument(argument, to_text(v[k]) + " at " + where, "finite values (no NaN or infinity)");
    }
  }
}
}  // namespace

void require_finite(PointsView x, std::string_view argument) { check_finite(x.values(), argument, x.d); }
void require_finite(std::span<const float> v, std::string_view argument) { check_finite(v, argument, 0); }
void require_finite(std::span<const double> v, std::string_view argument) { check_finite(v, argument, 0); }

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
