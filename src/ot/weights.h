// Internal to src/ot: the shared check of marginal weights.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace otgen {

// Weights of n points: empty = uniform 1/n; else length n, non-negative, finite and summing to 1
// within 1e-6 (otgen::Error naming `name` otherwise); returned divided by their sum.
std::vector<double> checked_weights(std::span<const double> w, int64_t n, const char* name);

}  // namespace otgen
