// CSV parser of the digits dataset (src/data/datasets.cpp).
#include <cstdint>
#include <string_view>

#include "data/parsers.h"
#include "otgen/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    otgen::detail::parse_digits_csv(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.csv");
  } catch (const otgen::Error&) {
  }
  return 0;
}
