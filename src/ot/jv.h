// Internal: the Jonker-Volgenant dense linear assignment solver (Jonker & Volgenant 1987, "A shortest
// augmenting path algorithm for dense and sparse linear assignment problems"), on an n x n row-major
// cost matrix of float or double; duals and distances in double.
#pragma once

#include <cstdint>
#include <vector>

namespace otgen::detail {

// Returns x with x[i] = column of row i, a permutation minimising sum_i cost[i * n + x[i]].
// Entries must be finite (checked by the caller). n >= 1.
template <class T>
std::vector<int64_t> jonker_volgenant(const T* cost, int64_t n);

}  // namespace otgen::detail
