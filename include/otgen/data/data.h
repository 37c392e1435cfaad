// Datasets: real data shipped by Debian packages, user .npy files, and seeded 2-D generators.
// Every dataset is (n, d) row-major float32 with optional int64 labels in [0, num_classes).
// Images are scaled to [-1, 1].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "otgen/core/points.h"

namespace otgen {

struct Dataset {
  std::string name;
  Points x;                     // (n, d)
  std::vector<int64_t> labels;  // empty, or length n
  int64_t num_classes = 0;      // 0 when unlabelled
  int64_t image_side = 0;       // > 0 for square images (28 for Fashion-MNIST, 8 for digits)
};

struct DatasetOptions {
  int64_t n = 0;          // 0: all points of a real dataset, 1000 for a generator; else the first n
                          // points of a real dataset (after an optional seeded shuffle) or n draws
  uint64_t seed = 0;      // generators, and the shuffle
  bool shuffle = false;   // real datasets: seeded shuffle before taking n
  bool test_split = false;          // fashion-mnist: the 10000-image test set instead of the 60000 train set
  std::string path;                 // dataset "npy": the (n, d) float file
  std::string labels_path;          // dataset "npy": optional (n,) int64 labels
  std::vector<float> means;         // "gaussian-mixture": K x 2 means (row-major); default 8 on a circle
  std::vector<float> weights;       // "gaussian-mixture": K weights (normalised); default uniform
  float stddev = 0.1f;              // "gaussian-mixture": per-component standard deviation
  void validate() const;
};

// Names: fashion-mnist, digits, npy, 8gaussians, moons, checkerboard, spirals, gaussian-mixture.
const std::vector<std::string>& dataset_names();

// Loads or generates a dataset; throws otgen::Error on an unknown name (listing the valid ones), a
// missing package file (naming the Debian package), or bad options.
Dataset load_dataset(const std::string& name, const DatasetOptions& opt = {});

// Where Debian's packages put the raw files (overridable with OTGEN_FASHION_MNIST_DIR and
// OTGEN_DIGITS_CSV for other systems).
std::string fashion_mnist_dir();
std::string digits_csv_path();

}  // namespace otgen
