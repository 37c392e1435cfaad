// The communicator: how the ranks of a sharded run combine their results (core layer, no mpi.h).
//
// A sharded computation (docs/dist.md) gives each rank a contiguous row range of the data; the ranks
// draw the same noise and combine their partial results with the collectives below. Without MPI (or
// when launched without mpirun) the communicator is the single process: size 1, every collective the
// identity. The MPI implementation is otgen_dist (otgen/dist/dist.h); Context carries a pointer to one.
//
// Every collective must be called by every rank, in the same order. Errors: a rank that fails
// before a collective would leave the others waiting, so checks that may fail on one rank only
// (reading its shard, validating its values) run inside `collectively(comm, f)`: every rank learns
// whether any rank failed, and all throw the same CollectiveError (the lowest failing rank's message).
//
// Thread-safety: a communicator is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "otgen/core/error.h"

namespace otgen {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: v[k] = sum over ranks of v[k] (the sum order is the implementation's: for doubles and
  // floats the result may differ from a serial sum in the last bits; int64 sums are exact).
  virtual void allreduce_sum(std::span<double> v) const = 0;
  virtual void allreduce_sum(std::span<float> v) const = 0;
  virtual void allreduce_sum(std::span<int64_t> v) const = 0;
  // In place, per k: the (value, index) pair with the largest value, the lowest index on ties;
  // index -1 = none (never wins). Exact: values are compared, never combined.
  virtual void allreduce_argmax(std::span<double> value, std::span<int64_t> index) const = 0;
  // Every rank's bytes, concatenated in rank order (the ranks may give different lengths).
  virtual std::vector<std::byte> allgather_bytes(std::span<const std::byte> mine) const = 0;
  // root's bytes into every rank's `bytes` (same length on every rank).
  virtual void broadcast_bytes(std::span<std::byte> bytes, int root) const = 0;
};

// The single process: size 1, every collective leaves its input as it is.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(std::span<double>) const override {}
  void allreduce_sum(std::span<float>) const override {}
  void allreduce_sum(std::span<int64_t>) const override {}
  void allreduce_argmax(std::span<double>, std::span<int64_t>) const override {}
  std::vector<std::byte> allgather_bytes(std::span<const std::byte> mine) const override {
    return {mine.begin(), mine.end()};
  }
  void broadcast_bytes(std::span<std::byte>, int) const override {}
};

// The process-wide single-process communicator (what a Context without one uses).
const Communicator& single_process();

// Thrown on every rank, with one message, when a check failed on some rank (see collectively).
class CollectiveError : public Error {
 public:
  using Error::Error;
};

// Every rank's values, concatenated in rank order.
template <class T>
std::vector<T> allgather(const Communicator& comm, std::span<const T> mine) {
  const auto bytes = comm.allgather_bytes(std::as_bytes(mine));
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

// Agrees on the outcome of one local step: `error` is this rank's failure message, empty for none.
// Returns normally when no rank failed; else every rank throws CollectiveError with the message of the
// lowest failing rank.
void agree(const Communicator& comm, const std::string& error);

// Runs f (which must not call collectives) and agrees on its outcome: an otgen::Error thrown by f on any
// rank becomes the same CollectiveError on every rank. On one process, f's error is rethrown as is.
template <class F>
void collectively(const Communicator& comm, F&& f) {
  if (comm.size() == 1) {
    f();
    return;
  }
  std::string error;
  try {
    f();
  } catch (const Error& e) {
    error = e.what();
    if (error.empty()) error = "error";
  }
  agree(comm, error);
}

// The contiguous row range [begin, end) of rank `rank` of `size` for n rows: rank r holds rows
// [r n / size, (r + 1) n / size) (sizes differ by at most one; a rank may hold none when n < size).
struct RowRange {
  int64_t begin = 0, end = 0;
  int64_t count() const { return end - begin; }
};
RowRange row_range(int64_t n, int rank, int size);

}  // namespace otgen
