// The MPI communicator (otgen/dist/dist.h): MPI_COMM_WORLD behind otgen::Communicator.
#include <mpi.h>

#include <stdlib.h>

#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "otgen/dist/dist.h"
#include "otgen/core/error.h"

namespace otgen::dist {
namespace {

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw Error(std::string("MPI: ") + what + " failed (error " + std::to_string(rc) + ")");
}

// One (value, index) pair of allreduce_argmax, combined by the merge rule of otgen/kernels/score_partials.h.
struct ValueIndex {
  double value;
  int64_t index;
};

void merge_argmax_op(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const ValueIndex*>(in);
  auto* b = static_cast<ValueIndex*>(inout);
  for (int k = 0; k < *len; ++k) {
    const bool take = a[k].index >= 0 && (b[k].index < 0 || a[k].value > b[k].value ||
                                          (a[k].value == b[k].value && a[k].index < b[k].index));
    if (take) b[k] = a[k];
  }
}

int count_of(size_t n) {
  if (n > static_cast<size_t>(std::numeric_limits<int>::max())) throw Error("MPI: message of " + std::to_string(n) + " elements is too large");
  return static_cast<int>(n);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    check(MPI_Type_contiguous(static_cast<int>(sizeof(ValueIndex)), MPI_BYTE, &pair_), "MPI_Type_contiguous");
    check(MPI_Type_commit(&pair_), "MPI_Type_commit");
    check(MPI_Op_create(&merge_argmax_op, /*commute=*/1, &argmax_), "MPI_Op_create");
  }
  ~MpiCommunicator() override {
    MPI_Op_free(&argmax_);
    MPI_Type_free(&pair_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(std::span<double> v) const override { sum(v.data(), v.size(), MPI_DOUBLE); }
  void allreduce_sum(std::span<float> v) const override { sum(v.data(), v.size(), MPI_FLOAT); }
  void allreduce_sum(std::span<int64_t> v) const override { sum(v.data(), v.size(), MPI_INT64_T); }
  void allreduce_argmax(std::span<double> value, std::span<int64_t> index) const override {
    if (value.size() != index.size()) throw Error("allreduce_argmax: value and index lengths differ");
    std::vector<ValueIndex> buf(value.size());
    for (size_t k = 0; k < buf.size(); ++k) buf[k] = {value[k], index[k]};
    check(MPI_Allreduce(MPI_IN_PLACE, buf.data(), count_of(buf.size()), pair_, argmax_, MPI_COMM_WORLD), "MPI_Allreduce");
    for (size_t k = 0; k < buf.size(); ++k) value[k] = buf[k].value, index[k] = buf[k].index;
  }
  std::vector<std::byte> allgather_bytes(std::span<const std::byte> mine) const override {
    const int n = count_of(mine.size());
    std::vector<int> counts(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_));
    check(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
    size_t total = 0;
    for (int r = 0; r < size_; ++r) displs[r] = count_of(total), total += static_cast<size_t>(counts[r]);
    std::vector<std::byte> out(total);
    check(MPI_Allgatherv(mine.data(), n, MPI_BYTE, out.data(), counts.data(), displs.data(), MPI_BYTE, MPI_COMM_WORLD),
          "MPI_Allgatherv");
    return out;
  }
  void broadcast_bytes(std::span<std::byte> bytes, int root) const override {
    check(MPI_Bcast(bytes.data(), count_of(bytes.size()), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }

 private:
  void sum(void* data, size_t n, MPI_Datatype t) const {
    check(MPI_Allreduce(MPI_IN_PLACE, data, count_of(n), t, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  int rank_ = 0, size_ = 1;
  MPI_Datatype pair_;
  MPI_Op argmax_;
};

}  // namespace

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
         std::getenv("PMI_RANK") != nullptr;
}

MpiWorld::MpiWorld(int* argc, char*** argv) {
  // A rank waiting in a collective yields its core instead of spinning (unless the user chose): the
  // ranks of a fit step wait for each other at every allreduce, and on a machine with other work (or
  // more ranks than cores) a spinning rank takes the core from the one it waits for.
  ::setenv("OMPI_MCA_mpi_yield_when_idle", "1", /*overwrite=*/0);
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  // Errors come back as return codes (turned into otgen::Error), not MPI's own abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  comm_ = std::make_unique<MpiCommunicator>();
}

MpiWorld::~MpiWorld() {
  comm_.reset();
  MPI_Finalize();
}

void MpiWorld::abort(int code) const {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace otgen::dist
