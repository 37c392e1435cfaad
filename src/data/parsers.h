// The parsers of the real datasets' files, on bytes already read (and gunzipped): exposed for the
// fuzzers (fuzz/) and the tests. Every malformed input throws otgen::Error naming `path`.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "otgen/data/data.h"

namespace otgen::detail {

// IDX (LeCun's MNIST format): magic 0x00000800 + dims, dims big-endian uint32 sizes, then exactly
// prod(sizes) bytes. Returns the data bytes and sets `shape`.
std::vector<unsigned char> parse_idx(std::span<const unsigned char> raw, int dims, std::vector<int64_t>& shape,
                                     const std::string& path);
// Fashion-MNIST from its images (dims 3) and labels (dims 1) IDX contents: labels in 0..9.
Dataset parse_fashion_mnist(std::span<const unsigned char> images, std::span<const unsigned char> labels,
                            const std::string& images_path, const std::string& labels_path);
// scikit-learn's digits.csv: lines of 64 pixels in 0..16 and a label in 0..9, comma-separated.
Dataset parse_digits_csv(std::string_view text, const std::string& path);

}  // namespace otgen::detail
