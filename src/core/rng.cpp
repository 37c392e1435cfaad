#include "otgen/core/rng.h"

#include <cmath>
#include <numbers>

namespace otgen {

std::array<uint32_t, 4> philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(M0) * c0, p1 = static_cast<uint64_t>(M1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  return {c0, c1, c2, c3};
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  const auto r = philox4x32(seed ^ 0x5851F42D4C957F2DULL, a, b);
  return (static_cast<uint64_t>(r[0]) << 32) | r[1];
}

double gumbel_at(uint64_t seed, uint64_t i, uint64_t j) {
  const auto r = philox4x32(seed, i, j);
  return -std::log(-std::log(u01_open53(r[0], r[1])));
}

uint32_t Rng::next_u32() {
  if (used_ == 4) {
    block_ = philox4x32(key_, 0, counter_++);
    used_ = 0;
  }
  return block_[used_++];
}

uint64_t Rng::next_u64() {
  const uint64_t hi = next_u32();
  return (hi << 32) | next_u32();
}

double Rng::uniform() {
  const uint32_t hi = next_u32();
  return u01_open53(hi, next_u32());
}

double Rng::normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  const double u1 = uniform(), u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double a = 2.0 * std::numbers::pi * u2;
  spare_normal_ = r * std::sin(a);
  has_spare_normal_ = true;
  return r * std::cos(a);
}

double Rng::gumbel() { return -std::log(-std::log(uniform())); }

double Rng::exponential() { return -std::log(uniform()); }

int64_t Rng::below(int64_t n) {
  const uint64_t un = static_cast<uint64_t>(n);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % un;  // reject the incomplete last block
  uint64_t v;
  do v = next_u64();
  while (v >= limit);
  return static_cast<int64_t>(v % un);
}

void Rng::fill_normal(std::span<float> out) {
  for (auto& v : out) v = static_cast<float>(normal());
}
void Rng::fill_normal(std::span<double> out) {
  for (auto& v : out) v = normal();
}
void Rng::fill_uniform(std::span<double> out) {
  for (auto& v : out) v = uniform();
}

}  // namespace otgen
