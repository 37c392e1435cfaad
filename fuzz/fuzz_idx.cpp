// IDX parser (Fashion-MNIST, src/data/datasets.cpp). The first byte picks the entry: 0 labels (1-D),
// 1 images (3-D), 2 both files (the next two bytes give where the images end).
#include <cstdint>
#include <span>
#include <vector>

#include "data/parsers.h"
#include "otgen/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int mode = data[0] % 3;
  std::span<const unsigned char> rest(data + 1, size - 1);
  std::vector<int64_t> shape;
  try {
    if (mode < 2) {
      otgen::detail::parse_idx(rest, mode == 0 ? 1 : 3, shape, "fuzz.idx");
    } else if (rest.size() >= 2) {
      const size_t cut = (rest[0] | (rest[1] << 8)) % (rest.size() - 1);
      const auto files = rest.subspan(2);
      otgen::detail::parse_fashion_mnist(files.first(cut), files.subspan(cut), "images.idx", "labels.idx");
    }
  } catch (const otgen::Error&) {
  }
  return 0;
}
