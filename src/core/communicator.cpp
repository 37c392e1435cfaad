#include "otgen/core/communicator.h"

namespace otgen {

const Communicator& single_process() {
  static const SingleProcess one;
  return one;
}

void agree(const Communicator& comm, const std::string& error) {
  std::vector<int64_t> failed(static_cast<size_t>(comm.size()), 0);
  failed[comm.rank()] = error.empty() ? 0 : 1;
  comm.allreduce_sum(failed);
  int first = -1;
  for (int r = 0; r < comm.size() && first < 0; ++r)
    if (failed[r]) first = r;
  if (first < 0) return;
  std::vector<int64_t> length{comm.rank() == first ? static_cast<int64_t>(error.size()) : 0};
  comm.allreduce_sum(length);
  std::string message(static_cast<size_t>(length[0]), '\0');
  if (comm.rank() == first) message = error;
  comm.broadcast_bytes(std::as_writable_bytes(std::span<char>(message.data(), message.size())), first);
  throw CollectiveError(message);
}

RowRange row_range(int64_t n, int rank, int size) {
  const int64_t q = n / size, rem = n % size;  // n r / size without overflow
  auto at = [&](int r) { return q * r + rem * r / size; };
  return {at(rank), at(rank + 1)};
}

}  // namespace otgen
