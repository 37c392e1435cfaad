// Open MPI behind the communicator (dist layer, library otgen_dist; built when OTGEN_MPI is on).
//
// MpiWorld is the process's MPI session: MPI_Init_thread on construction (MPI_THREAD_FUNNELED: only
// the thread that made it calls MPI), MPI_Finalize on destruction; world() is MPI_COMM_WORLD as an
// otgen::Communicator. Make one per process, in main, when launched by mpirun (launched_by_mpirun()).
// Thread-safety: one thread at a time (the one that made it).
#pragma once

#include <memory>

#include "otgen/core/communicator.h"

namespace otgen::dist {

// Whether this process was started by mpirun / mpiexec (Open MPI's or PMIx's environment is set).
bool launched_by_mpirun();

class MpiWorld {
 public:
  MpiWorld(int* argc, char*** argv);
  ~MpiWorld();
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;
  const Communicator& world() const { return *comm_; }
  // Ends every rank with `code` (MPI_Abort): for a failure that the other ranks cannot learn of.
  [[noreturn]] void abort(int code) const;

 private:
  std::unique_ptr<Communicator> comm_;
};

}  // namespace otgen::dist
