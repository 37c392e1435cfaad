// Context: the resources a call may use — threads, the RNG seed, whether to show progress. It travels
// as an argument, never as a global. Results depend on (seed, threads) only; most on the seed alone.
#pragma once

#include <cstdint>
#include <functional>

namespace otgen {

struct ProgressEvent;  // otgen/core/progress.h
class Communicator;    // otgen/core/communicator.h
using ProgressCallback = std::function<void(const ProgressEvent&)>;

struct Context {
  int threads = 0;     // OpenMP threads for parallel regions; 0 = all the machine's cores
  uint64_t seed = 0;   // root seed of every random stream of the call
  bool quiet = false;  // no progress on stderr (bar on a terminal, else periodic lines: otgen/core/progress.h)
  // Called with the progress of long loops whether quiet or not (e.g. by the Python module); empty: none.
  ProgressCallback on_progress = {};
  // Polled by long loops (the semidiscrete fit) between steps; true stops the loop after its step, with
  // the result so far and stopped_by "interrupted" (the CLI: Ctrl-C; Python: PyErr_CheckSignals).
  std::function<bool()> should_stop = {};
  // The ranks of a sharded run (otgen/core/communicator.h; docs/dist.md); null = the single process. With
  // more than one rank, the semidiscrete calls treat their data as this rank's row range of the whole.
  const Communicator* comm = nullptr;

  // The thread count to use: `threads` if positive, else the number of available cores.
  int resolved_threads() const;
  // *comm, or the single process.
  const Communicator& communicator() const;
  // Throws otgen::Error when threads < 0.
  void validate() const;
};

}  // namespace otgen
