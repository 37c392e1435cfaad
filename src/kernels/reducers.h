// Internal: row reducers of the score engine and the one driver that runs them.
//
// A reducer turns the scores of one row into that row's result, tile by tile:
//
//   struct R {
//     using Slot = ...;                     // one element of a partial (trivially copyable)
//     int64_t width() const;                // Slots per partial (1, or k for top-k, ...)
//     // Fold the scores s[0..cols) of row i, columns [c0, c0 + cols), into part[0..width).
//     // s is writable scratch. Runs concurrently for different (i, tile): write only part.
//     void fold(int64_t i, float* s, int64_t c0, int64_t cols, Slot* part) const;
//     // Merge `count` partials of one row, given in column order (count * width Slots), into out.
//     void merge(const Slot* parts, int64_t count, Slot* out) const;
//     // Write row i's result from its merged partial. Runs on one thread, rows in order.
//     void finish(int64_t i, const Slot* merged);
//   };
//
// reduce_rows<R> does the rest: tiling, the block computer, row groups sized to the partial budget,
// threads, and the merge of each row's partials in column-tile order (so results do not depend on
// the thread count). The merges are the public ones of otgen/kernels/score_partials.h where they exist, so
// partials made elsewhere (other column ranges, other ranks) merge the same way.
// A new reduction is one reducer type here (or beside its caller) plus its test.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/tile_engine.h"
#include "otgen/core/rng.h"
#include "otgen/kernels/score_partials.h"

namespace otgen::kernels {

// Bytes of per-(row, column tile) partial state a row group may use.
inline constexpr int64_t kPartialBudget = int64_t{16} << 20;

// Rows per group so that group_rows * nct * slot_bytes stays within the partial budget (>= tile_rows).
inline int64_t group_rows(const Tiling& t, int64_t slot_bytes) {
  const int64_t per_row = std::max<int64_t>(1, t.nct * slot_bytes);
  const int64_t g = std::max<int64_t>(t.tr, kPartialBudget / per_row / t.tr * t.tr);
  const int64_t n_up = (t.n + t.tr - 1) / t.tr * t.tr;
  return std::max<int64_t>(t.tr, std::min(g, n_up));
}

template <class R>
void reduce_rows(const BlockComputer& bc, const Tiling& t, const Context& ctx, R& r) {
  using Slot = typename R::Slot;
  const int64_t W = r.width();
  const int64_t G = group_rows(t, W * static_cast<int64_t>(sizeof(Slot)));
  const int64_t per_row = t.nct * W;
  std::vector<Slot> parts(static_cast<size_t>(G * per_row));
  std::vector<Slot> merged(static_cast<size_t>(W));
  run_row_reduction(
      bc, t, G, ctx,
      [&](int64_t i, float* s, int64_t c0, int64_t cols, int64_t ct) {
        r.fold(i, s, c0, cols, parts.data() + (i % G) * per_row + ct * W);
      },
      [&](int64_t g0, int64_t g1) {
        for (int64_t i = g0; i < g1; ++i) {
          r.merge(parts.data() + (i - g0) * per_row, t.nct, merged.data());
          r.finish(i, merged.data());
        }
      });
}

// argmax_j s_ij + h_j (lowest j on ties) and its value.
struct ArgmaxReducer {
  using Slot = ArgmaxPartial<float>;
  const float* h;  // null = 0
  std::span<int64_t> index;
  std::span<float> value;

  int64_t width() const { return 1; }
  void fold(int64_t, float* s, int64_t c0, int64_t cols, Slot* part) const {
    const float mx = affine_max(s, cols, 1.0f, h ? h + c0 : nullptr);  // s + h, exactly rounded
    *part = mx == kNegInfF ? Slot{} : Slot{mx, c0 + first_equal(s, cols, mx)};
  }
  void merge(const Slot* parts, int64_t count, Slot* out) const {
    *out = merge_argmax(std::span<const Slot>(parts, static_cast<size_t>(count)));
  }
  void finish(int64_t i, const Slot* m) {
    int64_t arg = m->index;
    if (arg < 0) {  // every unmasked score overflowed to -inf: the first unmasked column
      arg = 0;
      while (h && std::isinf(h[arg])) ++arg;
    }
    index[i] = arg;
    value[i] = m->value;
  }
};

// The k largest s_ij + h_j of each row (ties: lowest j first).
struct TopkReducer {
  using Slot = TopkEntry;
  const float* h;
  int64_t k;
  std::span<int64_t> index;
  std::span<float> value;

  int64_t width() const { return k; }
  void fold(int64_t, float* s, int64_t c0, int64_t cols, Slot* v) const {
    if (h) {
      const float* hc = h + c0;
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) s[c] += hc[c];
    }
    std::fill(v, v + k, Slot{});
    for (int64_t c = 0; c < cols; ++c) {  // insertion into the sorted list v[0..k)
      const Slot e{s[c], c0 + c};
      if (!ranks_before(e, v[k - 1])) continue;
      int64_t q = k - 1;
      for (; q > 0 && ranks_before(e, v[q - 1]); --q) v[q] = v[q - 1];
      v[q] = e;
    }
  }
  void merge(const Slot* parts, int64_t count, Slot* out) const {
    merge_topk(std::span<const Slot>(parts, static_cast<size_t>(count * k)), k, std::span<Slot>(out, static_cast<size_t>(k)));
  }
  void finish(int64_t i, const Slot* m) {
    for (int64_t q = 0; q < k; ++q) index[i * k + q] = m[q].index, value[i * k + q] = m[q].value;
  }
};

// lse_i = log sum_j exp(a * B_ij + off_j), B = the blocks (inner products or squared distances).
struct LseReducer {
  using Slot = LsePartial;
  float a;
  const float* off;  // null = 0
  std::span<double> lse;

  int64_t width() const { return 1; }
  void fold(int64_t, float* s, int64_t c0, int64_t cols, Slot* part) const {
    const float mx = affine_max(s, cols, a, off ? off + c0 : nullptr);
    *part = Slot{mx, mx == kNegInfF ? 0.0 : exp_sum(s, cols, 1.0f, -mx, false)};
  }
  void merge(const Slot* parts, int64_t count, Slot* out) const {
    *out = merge_lse(std::span<const Slot>(parts, static_cast<size_t>(count)));
  }
  void finish(int64_t i, const Slot* m) { lse[i] = lse_value(*m); }
};

// sum_j f(B_ij) per row for `width` functions (double partials, summed in column order).
template <class F>
struct RowSumReducer {
  using Slot = double;
  int64_t functions;
  F f;  // f(s, cols, out): out[0..functions) = the tile's sums
  std::span<double> out;

  int64_t width() const { return functions; }
  void fold(int64_t, float* s, int64_t, int64_t cols, Slot* part) const { f(s, cols, part); }
  void merge(const Slot* parts, int64_t count, Slot* o) const {
    for (int64_t a = 0; a < functions; ++a) {
      double sum = 0;
      for (int64_t t = 0; t < count; ++t) sum += parts[t * functions + a];
      o[a] = sum;
    }
  }
  void finish(int64_t i, const Slot* m) { std::copy(m, m + functions, out.begin() + i * functions); }
};

// Runs reducer R (of width 1) but keeps each row's merged partial instead of finishing it.
template <class R>
struct PartialsOf : R {
  std::span<typename R::Slot> kept;
  void finish(int64_t i, const typename R::Slot* m) { kept[i] = *m; }
};

}  // namespace otgen::kernels
