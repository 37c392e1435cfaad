// The library's thread policy for OpenBLAS (core layer).
//
// The library's parallel loops are OpenMP regions that call single-threaded BLAS inside; Debian's
// OpenBLAS is the pthread build and would otherwise start its own threads in every call. OpenBLAS's
// thread count is process-wide, so the pin is shared: while any BlasSingleThread is alive (in any
// thread) OpenBLAS runs on one thread; the last one to go restores the count that was set before the
// first arrived.
//
// Thread-safety: constructing and destroying pins from several threads at once is safe (a mutex).
// Your own BLAS calls made while a library call runs in another thread run on one thread.
#pragma once

#include <string_view>

namespace otgen {

// The kernel set OpenBLAS picked at load time (openblas_get_corename(): "SkylakeX", "Haswell",
// "Prescott", ...; OPENBLAS_CORETYPE overrides it), and whether it is one with FMA (AVX2/AVX-512
// SGEMM). Debian's OpenBLAS 0.3.21 does not know recent Xeons (family 6 model 207) and falls back to
// "Prescott" (SSE3, about a quarter of the FMA rate). The engine's automatic path uses this.
const char* blas_core_name();
bool blas_has_fma_kernels();
// Whether OpenBLAS's kernel set `core` (a name openblas_get_corename() gives) uses FMA.
bool blas_kernels_have_fma(std::string_view core);

class BlasSingleThread {
 public:
  BlasSingleThread();
  ~BlasSingleThread();
  BlasSingleThread(const BlasSingleThread&) = delete;
  BlasSingleThread& operator=(const BlasSingleThread&) = delete;
};

}  // namespace otgen
