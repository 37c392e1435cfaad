// Merges of the engine's partial results (otgen/kernels/score_partials.h).
#include "otgen/kernels/score_partials.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace otgen {

LsePartial merge_lse(std::span<const LsePartial> parts) {
  LsePartial out;
  for (const auto& p : parts) out.max = std::max(out.max, p.max);
  if (out.max == -std::numeric_limits<float>::infinity()) return out;
  for (const auto& p : parts)
    if (p.max != -std::numeric_limits<float>::infinity())
      out.sum += p.sum * std::exp(static_cast<double>(p.max) - out.max);
  return out;
}

double lse_value(const LsePartial& p) {
  if (p.max == -std::numeric_limits<float>::infinity()) return -std::numeric_limits<double>::infinity();
  return p.max + std::log(p.sum);
}

void merge_topk(std::span<const TopkEntry> parts, int64_t k, std::span<TopkEntry> out) {
  const int64_t count = static_cast<int64_t>(parts.size()) / k;
  thread_local std::vector<TopkEntry> tmp;
  tmp.resize(static_cast<size_t>(k));
  std::fill(out.begin(), out.end(), TopkEntry{});
  for (int64_t t = 0; t < count; ++t) {  // out := the k best of out and list t (both sorted)
    const TopkEntry* a = out.data();
    const TopkEntry* b = parts.data() + t * k;
    for (int64_t q = 0, ia = 0, ib = 0; q < k; ++q) tmp[q] = ranks_before(b[ib], a[ia]) ? b[ib++] : a[ia++];
    std::copy(tmp.begin(), tmp.end(), out.begin());
  }
}

}  // namespace otgen
