// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). A stream is named by
// (seed, stream id); the k-th draw of a stream is a pure function of (seed, stream, k). Parallel code
// gives each unit of work (a row, a particle, a tile) its own stream, so results depend on the seed
// and never on the thread count or the schedule.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace otgen {

// One Philox4x32-10 block: four 32-bit words from a 64-bit key and a 128-bit counter.
std::array<uint32_t, 4> philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo);

// Derives an independent 64-bit seed from (seed, a, b): for keying streams by several indices.
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0);

// Uniform in the open interval (0, 1) from a 32-bit word: never 0, never 1 (safe for log).
inline double u01_open(uint32_t w) { return (static_cast<double>(w) + 0.5) * 0x1.0p-32; }
// Uniform in (0, 1) with 53 random bits from two words. (m + 0.5) 2^-53 rounds to 1.0 for the top
// m = 2^53 - 1, so the result is clamped to the largest double below 1: the open interval holds, and
// -log(-log(u)) <= 53 ln 2 (the bound the engine's Gumbel-max skipping relies on).
inline double u01_open53(uint32_t hi, uint32_t lo) {
  const uint64_t m = ((static_cast<uint64_t>(hi) << 21) ^ lo) & ((uint64_t{1} << 53) - 1);
  const double u = (static_cast<double>(m) + 0.5) * 0x1.0p-53;
  return u < 1.0 ? u : 1.0 - 0x1.0p-53;
}

// Standard Gumbel variate at position (i, j) of stream `seed`: a pure function of its arguments.
double gumbel_at(uint64_t seed, uint64_t i, uint64_t j);

class Rng {
 public:
  explicit Rng(uint64_t seed = 0, uint64_t stream = 0) : key_(mix_seed(seed, stream)) {}

  uint32_t next_u32();
  uint64_t next_u64();
  double uniform();            // (0, 1), 53 bits
  double normal();             // N(0, 1), Box-Muller on the open interval
  double gumbel();             // standard Gumbel: -log(-log U)
  double exponential();        // Exp(1)
  int64_t below(int64_t n);    // uniform integer in [0, n); n > 0; unbiased (rejection)
  void fill_normal(std::span<float> out);
  void fill_normal(std::span<double> out);
  void fill_uniform(std::span<double> out);

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
  std::array<uint32_t, 4> block_{};
  int used_ = 4;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

}  // namespace otgen
