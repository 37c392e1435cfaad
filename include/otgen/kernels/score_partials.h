// Partial results of the score reductions (otgen/kernels/scores.h) and their merges.
//
// The engine cuts the columns of every row into tiles; a reducer folds one tile of one row into a
// partial, and the partials of a row are merged in column order into the row's result. The same merge
// combines partials computed elsewhere (other column ranges of the same row: other threads now, other
// ranks of a sharded data set later), so a result computed in pieces equals the one computed at once,
// bit for bit, as long as the pieces are merged in column order.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <limits>
#include <span>

namespace otgen {

// The best column of a range: the largest value, the lowest index on ties; index -1 = no column
// (every column masked). T = float for scores, double for Gumbel-perturbed logits.
template <class T>
struct ArgmaxPartial {
  T value = -std::numeric_limits<T>::infinity();
  int64_t index = -1;
};

// The best of `parts` (any order: ties go to the lowest index).
template <class T>
ArgmaxPartial<T> merge_argmax(std::span<const ArgmaxPartial<T>> parts) {
  ArgmaxPartial<T> best;
  for (const auto& p : parts)
    if (p.index >= 0 && (best.index < 0 || p.value > best.value || (p.value == best.value && p.index < best.index)))
      best = p;
  return best;
}

// log sum_j exp(l_j) over a range as (max, sum_j exp(l_j - max)); max = -inf for an empty or fully
// masked range (sum 0).
struct LsePartial {
  float max = -std::numeric_limits<float>::infinity();
  double sum = 0;
};

// The partial of the union of `parts`: one rescaling to the overall max (order of `parts` fixes the
// rounding of the sum).
LsePartial merge_lse(std::span<const LsePartial> parts);

// log(sum) + max in double; -inf for an empty partial.
double lse_value(const LsePartial& p);

// One entry of a top-k list: larger value first, then lower index; index = kNoIndex marks an empty
// entry (ranks after every real one).
struct TopkEntry {
  static constexpr int64_t kNoIndex = std::numeric_limits<int64_t>::max();
  float value = -std::numeric_limits<float>::infinity();
  int64_t index = kNoIndex;
};

inline bool ranks_before(const TopkEntry& a, const TopkEntry& b) {
  return a.value > b.value || (a.value == b.value && a.index < b.index);
}

// The k best of the lists in `parts` (count * k entries, each list sorted by ranks_before) into
// out (k entries, sorted).
void merge_topk(std::span<const TopkEntry> parts, int64_t k, std::span<TopkEntry> out);

}  // namespace otgen
