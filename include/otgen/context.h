// Context: the resources a call may use — threads, the RNG seed, whether to show progress. It travels
// as an argument, never as a global. Results depend on (seed, threads) only; most on the seed alone.
#pragma once

#include <cstdint>

namespace otgen {

struct Context {
  int threads = 0;     // OpenMP threads for parallel regions; 0 = all the machine's cores
  uint64_t seed = 0;   // root seed of every random stream of the call
  bool quiet = false;  // no progress bars (they are also off when stderr is not a terminal)

  // The thread count to use: `threads` if positive, else the number of available cores.
  int resolved_threads() const;
  // Throws otgen::Error when threads < 0.
  void validate() const;
};

}  // namespace otgen
