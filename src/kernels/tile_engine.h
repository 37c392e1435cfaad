// Internal: the tiled block engine behind otgen/kernels/scores.h.
//
// The (n x m) score matrix is cut into blocks of tile_rows x tile_cols. A block is computed into a
// buffer either by one cblas_sgemm (inner products; squared distances via |x|^2 + |y|^2 - 2<x, y>)
// or, for small d, by a direct loop over the transposed y tile (exact differences for distances).
// A reducer folds each row of each block into a *partial* result stored per (row, column tile);
// after all blocks of a row group are folded, a finish step merges the partials of each row in
// column-tile order. The decomposition depends only on (n, m, tile sizes), never on the thread
// count or the schedule, so every result is bit-identical for any number of threads.
//
// Threads: one OpenMP region per row group, num_threads(ctx.resolved_threads()), dynamic schedule
// over blocks. Debian's OpenBLAS is the pthread build and knows nothing of OpenMP, so it is pinned
// to one thread for the duration of the call (BlasSingleThread) and restored afterwards.
#pragma once

#include <cblas.h>
#include <sys/mman.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <limits>
#include <memory>
#include <vector>

#include "otgen/core/blas_threads.h"
#include "otgen/core/context.h"
#include "otgen/core/points.h"
#include "otgen/kernels/scores.h"

namespace otgen::kernels {

inline constexpr float kNegInfF = -std::numeric_limits<float>::infinity();
inline constexpr double kNegInfD = -std::numeric_limits<double>::infinity();

// e^x for x <= 88 in float (Cephes expf polynomial, ~2 ulp); 0 for x < -87 and for -inf.
inline float fast_exp(float x) {
  const float xc = std::min(std::max(x, -87.0f), 88.0f);
  const float fx = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = (static_cast<int32_t>(fx) + 127) << 23;
  const float v = p * std::bit_cast<float>(e);
  return x < -87.0f ? 0.0f : v;
}

// Row kernels over a float row of `n` values. The AVX2 versions process every element (the ragged
// tail through a -inf padded copy), so a value never depends on where a tile boundary falls.
#if defined(__AVX2__) && defined(__FMA__)
inline __m256 exp8(__m256 x) {
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
  const __m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_and_ps(v, _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ));
}

// Word 0 of philox4x32 (otgen/core/rng.h) at key `key`, counter (hi, lo + q) for the 8 lanes q = 0..7, as
// 8 x uint32. Must equal philox4x32(key, hi, lo + q)[0] bit for bit (tested through row_gumbel_argmax).
inline __m256i philox8_word0(uint64_t key, uint64_t hi, uint64_t lo) {
  const __m256i lo32 = _mm256_set1_epi64x(0xFFFFFFFFLL);
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53LL), m1 = _mm256_set1_epi64x(0xCD9E8D57LL);
  __m256i out[2];
  for (int half = 0; half < 2; ++half) {
    const __m256i ctr = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<long long>(lo + 4 * half)),
                                         _mm256_setr_epi64x(0, 1, 2, 3));
    __m256i c0 = _mm256_and_si256(ctr, lo32), c1 = _mm256_srli_epi64(ctr, 32);
    __m256i c2 = _mm256_set1_epi64x(static_cast<uint32_t>(hi)), c3 = _mm256_set1_epi64x(static_cast<uint32_t>(hi >> 32));
    uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
    for (int round = 0; round < 10; ++round) {
      const __m256i p0 = _mm256_mul_epu32(m0, c0), p1 = _mm256_mul_epu32(m1, c2);
      c0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1), _mm256_set1_epi64x(k0));
      c1 = _mm256_and_si256(p1, lo32);
      c2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3), _mm256_set1_epi64x(k1));
      c3 = _mm256_and_si256(p0, lo32);
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    out[half] = c0;  // word 0 in the low half of each 64-bit lane
  }
  // Gather the low 32 bits of the 2 x 4 lanes into 8 x 32.
  const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  const __m256i a = _mm256_permutevar8x32_epi32(out[0], idx), b = _mm256_permutevar8x32_epi32(out[1], idx);
  return _mm256_permute2x128_si256(a, b, 0x20);
}

inline __m256d sum_halves(__m256d acc, __m256 v) {
  return _mm256_add_pd(_mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v))),
                       _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

inline double hsum(__m256d v) {
  alignas(32) double t[4];
  _mm256_store_pd(t, v);
  return (t[0] + t[1]) + (t[2] + t[3]);
}

// Loads elements [c, c + 8) of s, padding past n with `pad`.
inline __m256 load_padded(const float* s, int64_t c, int64_t n, float pad) {
  if (c + 8 <= n) return _mm256_loadu_ps(s + c);
  alignas(32) float t[8];
  for (int q = 0; q < 8; ++q) t[q] = c + q < n ? s[c + q] : pad;
  return _mm256_load_ps(t);
}

inline float row_max(const float* s, int64_t n) {
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t c = 0; c < n; c += 8)
    m = _mm256_max_ps(m, load_padded(s, c, n, -std::numeric_limits<float>::infinity()));
  alignas(32) float t[8];
  _mm256_store_ps(t, m);
  float r = t[0];
  for (int q = 1; q < 8; ++q) r = std::max(r, t[q]);
  return r;
}

// The first c with s[c] == v (n if none).
inline int64_t first_equal(const float* s, int64_t n, float v) {
  const __m256 vv = _mm256_set1_ps(v);
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + c), vv, _CMP_EQ_OQ));
    if (mask) return c + std::countr_zero(static_cast<unsigned>(mask));
  }
  for (; c < n; ++c)
    if (s[c] == v) return c;
  return n;
}

// s[c] = a * s[c] + off[c] (off null: + 0), in place, one pass; returns max_c s[c].
inline float affine_max(float* s, int64_t n, float a, const float* off) {
  const __m256 va = _mm256_set1_ps(a), ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 m = ninf;
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 o = off ? _mm256_loadu_ps(off + c) : _mm256_setzero_ps();
    const __m256 r = _mm256_fmadd_ps(va, _mm256_loadu_ps(s + c), o);
    _mm256_storeu_ps(s + c, r);
    m = _mm256_max_ps(m, r);
  }
  if (c < n) {
    alignas(32) float t[8];
    const __m256 o = off ? load_padded(off, c, n, 0.0f) : _mm256_setzero_ps();
    _mm256_store_ps(t, _mm256_fmadd_ps(va, load_padded(s, c, n, 0.0f), o));
    for (int64_t q = 0; c + q < n; ++q) s[c + q] = t[q];
    m = _mm256_max_ps(m, load_padded(t, 0, n - c, -std::numeric_limits<float>::infinity()));
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, m);
  float r = t[0];
  for (int q = 1; q < 8; ++q) r = std::max(r, t[q]);
  return r;
}

// sum_c exp(a * s[c] + b) in double; with keep, s[c] becomes exp(a * s[c] + b).
inline double exp_sum(float* s, int64_t n, float a, float b, bool keep) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  __m256d acc = _mm256_setzero_pd();
  for (int64_t c = 0; c < n; c += 8) {
    const __m256 e = exp8(_mm256_fmadd_ps(va, load_padded(s, c, n, 0.0f), vb));
    const __m256 ez = c + 8 <= n ? e : _mm256_and_ps(e, _mm256_cmp_ps(_mm256_set_ps(7, 6, 5, 4, 3, 2, 1, 0),
                                                                     _mm256_set1_ps(static_cast<float>(n - c)), _CMP_LT_OQ));
    acc = sum_halves(acc, ez);
    if (keep) {
      if (c + 8 <= n) {
        _mm256_storeu_ps(s + c, ez);
      } else {
        alignas(32) float t[8];
        _mm256_store_ps(t, ez);
        for (int64_t q = 0; c + q < n; ++q) s[c + q] = t[q];
      }
    }
  }
  return hsum(acc);
}

// acc[c] += w * exp(a * s[c] + b) (double accumulators).
inline void exp_accumulate(const float* s, int64_t n, float a, float b, double w, double* acc) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  const __m256d vw = _mm256_set1_pd(w);
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 e = exp8(_mm256_fmadd_ps(va, _mm256_loadu_ps(s + c), vb));
    _mm256_storeu_pd(acc + c, _mm256_fmadd_pd(vw, _mm256_cvtps_pd(_mm256_castps256_ps128(e)), _mm256_loadu_pd(acc + c)));
    _mm256_storeu_pd(acc + c + 4,
                     _mm256_fmadd_pd(vw, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)), _mm256_loadu_pd(acc + c + 4)));
  }
  if (c < n) {
    alignas(32) float t[8];
    _mm256_store_ps(t, exp8(_mm256_fmadd_ps(va, load_padded(s, c, n, 0.0f), vb)));
    for (int64_t q = 0; c + q < n; ++q) acc[c + q] += w * static_cast<double>(t[q]);
  }
}
#else
inline float row_max(const float* s, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < n; ++c) m = s[c] > m ? s[c] : m;
  return m;
}
inline int64_t first_equal(const float* s, int64_t n, float v) {
  for (int64_t c = 0; c < n; ++c)
    if (s[c] == v) return c;
  return n;
}
inline float affine_max(float* s, int64_t n, float a, const float* off) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < n; ++c) {
    s[c] = a * s[c] + (off ? off[c] : 0.0f);
    m = s[c] > m ? s[c] : m;
  }
  return m;
}
inline double exp_sum(float* s, int64_t n, float a, float b, bool keep) {
  double sum = 0;
  for (int64_t c = 0; c < n; ++c) {
    const float e = fast_exp(a * s[c] + b);
    if (keep) s[c] = e;
    sum += e;
  }
  return sum;
}
inline void exp_accumulate(const float* s, int64_t n, float a, float b, double w, double* acc) {
  for (int64_t c = 0; c < n; ++c) acc[c] += w * static_cast<double>(fast_exp(a * s[c] + b));
}
#endif

using otgen::BlasSingleThread;  // the shared OpenBLAS pin (otgen/core/blas_threads.h)

// An uninitialised float buffer on 2 MiB-aligned memory with transparent huge pages requested
// (madvise): the one-pass softmax buffer is written with a row stride of m floats, which touches a
// new 4 KiB page per row; huge pages cut the page faults and TLB misses.
class HugeBuffer {
 public:
  explicit HugeBuffer(size_t count) {
    constexpr size_t kAlign = size_t{2} << 20;
    const size_t bytes = std::max<size_t>(kAlign, (count * sizeof(float) + kAlign - 1) / kAlign * kAlign);
    data_ = static_cast<float*>(std::aligned_alloc(kAlign, bytes));
    if (!data_) throw std::bad_alloc();
    madvise(data_, bytes, MADV_HUGEPAGE);  // advisory: ignored where unsupported
  }
  ~HugeBuffer() { std::free(data_); }
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;
  float* data() const { return data_; }

 private:
  float* data_ = nullptr;
};

enum class BlockKind {
  Dot,     // <x_i, y_j>
  SqDist,  // |x_i - y_j|^2 (>= 0)
};

// Computes blocks of inner products or squared distances.
class BlockComputer {
 public:
  BlockComputer(PointsView x, PointsView y, BlockKind kind, const ScoreOptions& opt)
      : x_(x), y_(y), kind_(kind), direct_(x.d <= opt.direct_max_dim) {
    if (kind_ == BlockKind::SqDist && !direct_) {
      xn_ = squared_norms(x);
      yn_ = squared_norms(y);
    }
  }

  bool direct() const { return direct_; }
  int64_t d() const { return x_.d; }

  // out[r * ldo + c] for r < rows, c < cols: block (r0.., c0..). scratch: per-thread, grown as needed.
  void compute(int64_t r0, int64_t rows, int64_t c0, int64_t cols, float* out, int64_t ldo,
               std::vector<float>& scratch) const {
    if (rows == 0 || cols == 0) return;
    const int64_t d = x_.d;
    if (!direct_) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(cols),
                  static_cast<int>(d), 1.0f, x_.row(r0), static_cast<int>(d), y_.row(c0), static_cast<int>(d),
                  0.0f, out, static_cast<int>(ldo));
      if (kind_ == BlockKind::SqDist) {
        const float* yn = yn_.data() + c0;
        for (int64_t r = 0; r < rows; ++r) {
          float* o = out + r * ldo;
          const float xn = xn_[static_cast<size_t>(r0 + r)];
#pragma omp simd
          for (int64_t c = 0; c < cols; ++c) o[c] = std::max(0.0f, xn + yn[c] - 2.0f * o[c]);
        }
      }
      return;
    }
    // Direct path: transpose the y tile to (d, cols) so the inner loop runs over columns.
    if (scratch.size() < static_cast<size_t>(d * cols)) scratch.resize(static_cast<size_t>(d * cols));
    float* yt = scratch.data();
    for (int64_t c = 0; c < cols; ++c) {
      const float* yr = y_.row(c0 + c);
      for (int64_t k = 0; k < d; ++k) yt[k * cols + c] = yr[k];
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* o = out + r * ldo;
      const float* xr = x_.row(r0 + r);
      if (kind_ == BlockKind::Dot) {
        const float a0 = xr[0];
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) o[c] = a0 * yt[c];
        for (int64_t k = 1; k < d; ++k) {
          const float a = xr[k];
          const float* t = yt + k * cols;
#pragma omp simd
          for (int64_t c = 0; c < cols; ++c) o[c] += a * t[c];
        }
      } else {
        const float a0 = xr[0];
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) {
          const float t = a0 - yt[c];
          o[c] = t * t;
        }
        for (int64_t k = 1; k < d; ++k) {
          const float a = xr[k];
          const float* yk = yt + k * cols;
#pragma omp simd
          for (int64_t c = 0; c < cols; ++c) {
            const float t = a - yk[c];
            o[c] += t * t;
          }
        }
      }
    }
  }

 private:
  PointsView x_, y_;
  BlockKind kind_;
  bool direct_;
  std::vector<float> xn_, yn_;
};

// Threads for a region of `items` independent work items and about `work` flop-equivalents
// (n m (d + 16)): problems under ~1-2 ms of one core's work run on one thread. A parallel region
// costs microseconds on a quiet machine, but on a loaded one libgomp's spinning waiters (the default
// OMP_WAIT_POLICY) turned a 0.8 ms KDE call (1000 x 1000, d = 2) into 12-17 ms with 2 threads.
inline int team_size(const Context& ctx, int64_t items, double work) {
  const int64_t t = std::min<int64_t>(ctx.resolved_threads(), std::max<int64_t>(1, items));
  return work < 4.0e7 ? 1 : static_cast<int>(t);
}

// The tiling of one call.
struct Tiling {
  int64_t n = 0, m = 0, tr = 1, tc = 1, nct = 0;
  Tiling(int64_t n_, int64_t m_, const ScoreOptions& opt, bool direct)
      : n(n_), m(m_), tr(std::max<int64_t>(1, opt.tile_rows)), tc(std::max<int64_t>(1, opt.tile_cols)) {
    if (direct) tr = std::min<int64_t>(tr, 128), tc = std::min<int64_t>(tc, 1024);
    nct = (m + tc - 1) / tc;
  }
  int64_t cols(int64_t ct) const { return std::min(tc, m - ct * tc); }
};

// Row groups of at most `group_rows` rows (a multiple of tr) are processed one after another; within a
// group, every (row tile, column tile) block is computed and fold(i, row_scores, c0, cols, ct) is called
// for each of its rows (row_scores is writable scratch: the reducer may overwrite it). Then
// finish(g0, g1) runs outside the parallel region. fold must only write state owned by (i, ct).
template <class Fold, class Finish>
void run_row_reduction(const BlockComputer& bc, const Tiling& t, int64_t group_rows, const Context& ctx,
                       Fold&& fold, Finish&& finish) {
  if (t.n == 0) return;
  group_rows = std::max<int64_t>(t.tr, group_rows / t.tr * t.tr);
  BlasSingleThread blas_guard;
  for (int64_t g0 = 0; g0 < t.n; g0 += group_rows) {
    const int64_t g1 = std::min(t.n, g0 + group_rows);
    const int64_t nrb = (g1 - g0 + t.tr - 1) / t.tr;
    const int64_t items = nrb * t.nct;
    const int threads = team_size(ctx, items, static_cast<double>(g1 - g0) * t.m * (bc.d() + 16));
#pragma omp parallel num_threads(threads)
    {
      // Not zero-filled: compute() writes every entry a fold reads (a 2 MiB memset per call was 4.5% of
      // the digits' default fit).
      const auto block = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(std::min(t.tr, g1 - g0) * std::min(t.tc, t.m)));
      std::vector<float> scratch;
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < items; ++it) {
        const int64_t rb = it / t.nct, ct = it % t.nct;
        const int64_t r0 = g0 + rb * t.tr, rows = std::min(t.tr, g1 - r0);
        const int64_t c0 = ct * t.tc, cols = t.cols(ct);
        bc.compute(r0, rows, c0, cols, block.get(), cols, scratch);
        for (int64_t r = 0; r < rows; ++r) fold(r0 + r, block.get() + r * cols, c0, cols, ct);
      }
    }
    finish(g0, g1);
  }
}

}  // namespace otgen::kernels
