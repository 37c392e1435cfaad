// Points: row-major float32 arrays of shape (n, d); point i is data[i*d .. i*d + d).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace otgen {

// A non-owning view of n points in R^d. data may be null when n == 0.
struct PointsView {
  const float* data = nullptr;
  int64_t n = 0;
  int64_t d = 0;

  const float* row(int64_t i) const { return data + i * d; }
  std::span<const float> values() const { return {data, static_cast<size_t>(n * d)}; }
};

// Owning (n, d) array.
struct Points {
  std::vector<float> data;
  int64_t n = 0;
  int64_t d = 0;

  Points() = default;
  Points(int64_t n_, int64_t d_) : data(static_cast<size_t>(n_ * d_)), n(n_), d(d_) {}
  Points(std::vector<float> values, int64_t n_, int64_t d_);  // checks values.size() == n * d

  float* row(int64_t i) { return data.data() + i * d; }
  const float* row(int64_t i) const { return data.data() + i * d; }
  PointsView view() const { return {data.data(), n, d}; }
  operator PointsView() const { return view(); }
};

// Throws otgen::Error naming `argument` if any value is NaN or infinite.
// first: the row (index) of x[0] in the whole array, for the message (a shard's rows: otgen/core/npy.h).
void require_finite(PointsView x, std::string_view argument, int64_t first = 0);
void require_finite(std::span<const float> values, std::string_view argument, int64_t first = 0);
void require_finite(std::span<const double> values, std::string_view argument, int64_t first = 0);

// Class labels: every value >= 0 and the class count (largest label + 1) small enough that per-class
// arrays (about 64 bytes a class) fit in memory; throws otgen::Error naming `argument`. Returns the
// class count (0 for no labels).
int64_t require_labels(std::span<const int64_t> labels, std::string_view argument);

// Squared norms |x_i|^2, accumulated in double.
std::vector<float> squared_norms(PointsView x);

}  // namespace otgen
