// The shared OpenBLAS pin (otgen/core/blas_threads.h).
#include "otgen/core/blas_threads.h"

#include <cblas.h>

#include <mutex>
#include <string>

namespace otgen {
namespace {

struct Pin {
  std::mutex mutex;
  int depth = 0;  // pins alive
  int saved = 1;  // the count before the first
};

Pin& pin() {
  static Pin p;
  return p;
}

}  // namespace

const char* blas_core_name() {
  static const std::string name = openblas_get_corename();
  return name.c_str();
}

bool blas_kernels_have_fma(std::string_view core) {
  for (const char* k : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Excavator", "Steamroller",
                        "Piledriver", "Bulldozer"})
    if (core == k) return true;
  return false;
}

bool blas_has_fma_kernels() {
  static const bool fma = blas_kernels_have_fma(blas_core_name());
  return fma;
}

BlasSingleThread::BlasSingleThread() {
  std::lock_guard<std::mutex> lock(pin().mutex);
  if (pin().depth++ == 0) {
    pin().saved = openblas_get_num_threads();
    if (pin().saved != 1) openblas_set_num_threads(1);
  }
}

BlasSingleThread::~BlasSingleThread() {
  std::lock_guard<std::mutex> lock(pin().mutex);
  if (--pin().depth == 0 && pin().saved != 1) openblas_set_num_threads(pin().saved);
}

}  // namespace otgen
