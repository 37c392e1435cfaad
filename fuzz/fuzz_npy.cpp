// .npy reader (src/core/npy.cpp): the bytes are written to a file and read by each entry point.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "otgen/core/error.h"
#include "otgen/core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/dev/shm/otgen_fuzz_npy_" + std::to_string(::getpid()) + ".npy";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try { otgen::read_npy(path); } catch (const otgen::Error&) {}
  try { otgen::read_points_npy(path, "--data"); } catch (const otgen::Error&) {}
  try { otgen::read_points_npy(path, "--data", /*allow_nonfinite=*/true); } catch (const otgen::Error&) {}
  try { otgen::read_vector_npy(path, "--potential"); } catch (const otgen::Error&) {}
  try { otgen::read_int64_npy(path, "--labels"); } catch (const otgen::Error&) {}
  return 0;
}
