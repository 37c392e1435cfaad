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

namespace otgen {

class BlasSingleThread {
 public:
  BlasSingleThread();
  ~BlasSingleThread();
  BlasSingleThread(const BlasSingleThread&) = delete;
  BlasSingleThread& operator=(const BlasSingleThread&) = delete;
};

}  // namespace otgen
