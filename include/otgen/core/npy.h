// NumPy .npy files (format versions 1.0-3.0), C order.
//
// The input policy (the same as the Python module's for arrays): any real number type is read —
// float16/32/64 and 8- to 64-bit signed or unsigned integers, little- or big-endian — and converted:
// points and vectors to float32 / float64, labels and indices to int64 (floats are refused there;
// uint64 above 2^63 - 1 too). A 1-D array given as points is n points of dimension 1. Reading rejects
// Fortran order, other dtypes (bool, complex, strings, objects), bad headers and truncated files with
// otgen::Error naming the file. Files are written float32, float64 or int64, little-endian, atomically
// (otgen/core/staging.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "otgen/core/points.h"

namespace otgen {

enum class DType { Float32, Float64, Int64 };
const char* dtype_name(DType t);  // "float32", "float64", "int64"

// The content of a .npy file: shape and the element bytes, converted to the nearest of the three types
// (float16/32 -> Float32, float64 -> Float64, integers -> Int64).
struct NpyArray {
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;  // numel() * element size, little-endian

  int64_t numel() const;
  template <class T>
  const T* as() const { return reinterpret_cast<const T*>(bytes.data()); }
};

NpyArray read_npy(const std::string& path);

// A 2-D real array as float32 Points; a 1-D array of length n is read as (n, 1). `argument` names the
// option in errors. Rejects NaN/Inf (also float64 values beyond float32's range) unless allow_nonfinite.
Points read_points_npy(const std::string& path, const std::string& argument, bool allow_nonfinite = false);
// A 1-D real array as double; rejects NaN/Inf.
std::vector<double> read_vector_npy(const std::string& path, const std::string& argument);
// A 1-D integer array as int64 (labels, indices); floats are refused.
std::vector<int64_t> read_int64_npy(const std::string& path, const std::string& argument);

// Row ranges (sharded data, otgen/core/communicator.h): rows [begin, end) of the array's first dimension
// (end = -1: to the end) of the readers above, read without reading the rest of the file (the header
// is checked against the whole file as always). A range outside [0, rows] is an error naming the file.
int64_t npy_rows(const std::string& path);  // the first dimension (1 for a 0-D array); reads the header only
NpyArray read_npy_rows(const std::string& path, int64_t begin, int64_t end);
Points read_points_npy_rows(const std::string& path, const std::string& argument, int64_t begin, int64_t end,
                            bool allow_nonfinite = false);
std::vector<double> read_vector_npy_rows(const std::string& path, const std::string& argument, int64_t begin,
                                         int64_t end);
std::vector<int64_t> read_int64_npy_rows(const std::string& path, const std::string& argument, int64_t begin,
                                         int64_t end);
// A 1-D integer array of class labels, checked by require_labels (>= 0, a class count that fits in memory).
std::vector<int64_t> read_labels_npy(const std::string& path, const std::string& argument);

void write_npy(const std::string& path, std::span<const float> values, std::vector<int64_t> shape);
void write_npy(const std::string& path, std::span<const double> values, std::vector<int64_t> shape);
void write_npy(const std::string& path, std::span<const int64_t> values, std::vector<int64_t> shape);
inline void write_npy(const std::string& path, const Points& x) { write_npy(path, x.data, {x.n, x.d}); }

// Writes `content` to `path` atomically (temporary file in the same folder + rename).
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace otgen
