// The MPI communicator's collectives (otgen/core/communicator.h, otgen/dist/dist.h), run under mpirun -np K:
// each rank checks the results against values it computes itself for every rank. Exit 0 = pass.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "otgen/core/communicator.h"
#include "otgen/dist/dist.h"

using namespace otgen;

namespace {
int failures = 0;
void expect(bool ok, const char* what, int rank) {
  if (!ok) std::fprintf(stderr, "rank %d: FAILED %s\n", rank, what), ++failures;
}
}  // namespace

int main(int argc, char** argv) {
  dist::MpiWorld mpi(&argc, &argv);
  const Communicator& c = mpi.world();
  const int r = c.rank(), K = c.size();
  // Sums: exact for int64 and for small integers in double / float.
  std::vector<int64_t> i{r, 1, int64_t{1} << 40};
  c.allreduce_sum(i);
  expect(i[0] == K * (K - 1) / 2 && i[1] == K && i[2] == K * (int64_t{1} << 40), "int64 sum", r);
  std::vector<double> d{0.5 * r, -1.0};
  c.allreduce_sum(d);
  expect(d[0] == 0.25 * K * (K - 1) && d[1] == -K, "double sum", r);
  std::vector<float> f{static_cast<float>(r + 1)};
  c.allreduce_sum(f);
  expect(f[0] == static_cast<float>(K * (K + 1) / 2), "float sum", r);
  // Argmax: the largest value wins; ties go to the lowest index whatever rank holds it; -1 never wins.
  // slot 0: rank r offers (r, 100 - r): the last rank wins. slot 1: every rank offers 7.0 at index
  // 50 - r: the lowest index (the last rank's) wins. slot 2: only rank 0 has a candidate (-inf would
  // lose to it anyway): value -1e300 at index 3. slot 3: nobody has one.
  std::vector<double> v{static_cast<double>(r), 7.0, r == 0 ? -1e300 : -INFINITY, -INFINITY};
  std::vector<int64_t> ix{100 - r, 50 - r, r == 0 ? 3 : -1, -1};
  c.allreduce_argmax(v, ix);
  expect(v[0] == K - 1 && ix[0] == 100 - (K - 1), "argmax value", r);
  expect(v[1] == 7.0 && ix[1] == 50 - (K - 1), "argmax tie -> lowest index", r);
  expect(v[2] == -1e300 && ix[2] == 3, "argmax: -1 never wins", r);
  expect(ix[3] == -1, "argmax: none", r);
  // Allgather of different lengths: rank q gives q + 1 copies of q, in rank order.
  std::vector<int64_t> mine(static_cast<size_t>(r + 1), r);
  const auto all = allgather<int64_t>(c, mine);
  std::vector<int64_t> want;
  for (int q = 0; q < K; ++q) want.insert(want.end(), static_cast<size_t>(q + 1), q);
  expect(all == want, "allgather", r);
  // Broadcast from the last rank.
  std::string s = r == K - 1 ? "from the last rank" : std::string(18, '?');
  c.broadcast_bytes(std::as_writable_bytes(std::span<char>(s.data(), s.size())), K - 1);
  expect(s == "from the last rank", "broadcast", r);
  // Agreement: nobody fails -> no throw; ranks >= 1 fail -> every rank throws rank 1's message.
  bool threw = false;
  try {
    collectively(c, [] {});
  } catch (const CollectiveError&) {
    threw = true;
  }
  expect(!threw, "agree without failures", r);
  std::string msg;
  try {
    collectively(c, [&] {
      if (r >= 1) throw Error("bad input on rank " + std::to_string(r));
    });
  } catch (const CollectiveError& e) {
    msg = e.what();
  }
  expect(K == 1 ? msg.empty() : msg == "bad input on rank 1", "agree: the lowest failing rank's message", r);
  // Row ranges cover [0, n) in order, sizes within one.
  for (int64_t n : {0, 1, 2, 10, 1001}) {
    int64_t at = 0;
    for (int q = 0; q < K; ++q) {
      const RowRange rr = row_range(n, q, K);
      expect(rr.begin == at && rr.count() >= n / K && rr.count() <= n / K + 1, "row_range", r);
      at = rr.end;
    }
    expect(at == n, "row_range covers n", r);
  }
  if (r == 0) std::printf("%s (%d ranks)\n", failures ? "FAILED" : "ok", K);
  return failures ? 1 : 0;
}
