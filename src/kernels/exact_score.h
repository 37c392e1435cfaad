// Internal: the exact re-score of the screened argmax paths (int8 lattice screen, bf16 screen).
//
// h + sum_k x_k y_k accumulated in double, k in order. Each product of two floats is exact in double
// (24 + 24 significant bits <= 53), so the value does not depend on whether the compiler contracts the
// multiply-add into an FMA: every screened path (and a naive double loop written the same way) gets
// the same double for the same (x_i, y_j, h_j), wherever column j sits in a tile.
#pragma once

#include <cstdint>

namespace otgen::kernels {

inline double exact_score(const float* x, const float* y, int64_t d, float h) {
  double s = h;
  for (int64_t k = 0; k < d; ++k) s += static_cast<double>(x[k]) * static_cast<double>(y[k]);
  return s;
}

}  // namespace otgen::kernels
