#include "otgen/core/context.h"

#include <omp.h>

#include "otgen/core/communicator.h"
#include "otgen/core/error.h"

namespace otgen {

int Context::resolved_threads() const { return threads > 0 ? threads : omp_get_num_procs(); }

const Communicator& Context::communicator() const { return comm ? *comm : single_process(); }

void Context::validate() const { require(threads >= 0, "threads", threads, "0 (all cores) or a positive count"); }

}  // namespace otgen
