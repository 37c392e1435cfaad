// The bf16 screen of row_argmax (kernels/bf16_screen.h): the avx512bf16 and amx paths. The library is
// compiled for x86-64-v3; only the functions marked OTGEN_BF16 (AVX-512) and OTGEN_AMX (AMX tiles) use
// more, and they run only after the caller checked the path (otgen/core/cpu_features.h).
//
// x and y are rounded to bf16 (x~, y~), the scores screened as v~_ij = fl(S~_ij + h_j) with
// S~_ij = <x~_i, y~_j> from bf16 products with float32 accumulation, in a 12-row x 32-column
// register-blocked vdpbf16ps micro-kernel (avx512bf16) or a 32 x 32 AMX micro-kernel (amx: 2 x 2
// TDPBF16PS tiles), and folded straight into each row's running k best (k = 1: argmax): no score
// block is written (one micro-tile of floats in L1 per micro-kernel call). Every column whose v~
// is within T_i of the row's k-th best v~ is kept and re-scored exactly in double (kernels/exact_score.h).
//
// The bound (w_ij = the double-evaluated exact score, the result's definition; u = 2^-24, u_d = 2^-53;
// g(n) = n u / (1 - n u); D = d rounded up to even; norms are Euclidean, of the rounded operands x~,
// y~, of the originals x, y, and of the rounding residuals r_x = |x~_i - x_i|, r_y = |y~_j - y_j|,
// all measured, maxima over unmasked columns written Y~, Y, R_y, H = max |h_j|):
//   S_ij - <x~, y~> = <x - x~, y> + <x~, y - y~>          |.| <= r_x Y + |x~| R_y          (Cauchy-Schwarz)
//   |S~ - <x~, y~>| <= g(D) |x~| Y~ + 2 D 2^-126           (bf16 products are exact in float32; D
//     + 2^-126 sqrt(D) (|x~| + Y~)                           roundings per lane, the flush of subnormal
//                                                            products and partial sums, and of subnormal
//                                                            inputs; amx: g(D) with 2u, its order and
//                                                            rounding being unspecified)
//   |v~ - (S~ + h)| <= u (1.01 |x~| Y~ + H)                (the float32 add of h)
//   |S + h - w|     <= g_d(d + 1) (|x| Y + H)               (the double evaluation)
// so |v~_ij - w_ij| <= E_i, the sum of the four right-hand sides, for every column j. The argmax l of
// w (each of them, on ties) then has v~_l >= w_l - E_i >= w_j - E_i >= v~_j - 2 E_i for every j: the
// columns within 2 E_i of the best v~ contain every maximiser of w, and the exact re-score picks the
// lowest one. Top k: the k columns of largest v~ all have w >= v~_(k) - E_i, so w_(k) >= v~_(k) - E_i,
// and every l with w_l >= w_(k) has v~_l >= w_(k) - E_i >= v~_(k) - 2 E_i: the same threshold from
// the k-th best v~ keeps all of the exact top k (and all columns tied with its last). T_i = (2 E_i (1 + 2u) + 4u (1.01 |x~| Y~ + H)) (1 + 2^-20) also covers the float32
// rounding of the threshold best - T_i. Rows where |x~| Y~ + H >= 2^120 (float32 overflow in reach)
// are not screened: all their columns are re-scored. Typical T_i: ~2^-7 |x| |y| (bf16's 8 bits).
#include "kernels/bf16_screen.h"

// GCC 12 warns inside its own _mm512_reduce_* / _mm512_set1_* (an undefined-start idiom): not ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "kernels/amx_tiles.h"
#include "kernels/exact_score.h"
#include "kernels/tile_engine.h"
#include "otgen/core/error.h"

#define OTGEN_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define OTGEN_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

namespace otgen::kernels {
namespace {

constexpr int kMR = 12;                  // rows per micro-kernel (12 x 32 float accumulators = 24 zmm)
constexpr int kNR = 32;                  // columns per panel
constexpr int64_t kStripsPerBlock = 32;  // rows per block = 384: the bf16 rows stay in L2
constexpr int64_t kPanelsPerGroup = 16;  // y panels swept per strip: 16 x 32 columns stay in L2
constexpr int kAmxMR = 32;               // AMX: rows per micro-kernel (2 x 2 tiles of 16 x 16 floats)
constexpr int64_t kAmxPairs = 16;        // AMX: bf16 pairs per tile row (64 bytes); pairs padded to it
constexpr int64_t kAmxStripsPerBlock = 12;  // AMX rows per block = 384, as above
constexpr double kU = 0x1p-24;
constexpr float kNegInfF = -std::numeric_limits<float>::infinity();

double gamma(double n, double u) { return n * u / (1 - n * u); }

// v[0..d) as bf16 pairs (round to nearest even; element 2q in the low half of word q, zero padded):
// out[0..(d + 1) / 2). Returns |v~|, |v|, |v~ - v| (rounded up).
struct Norms {
  double rounded = 0, exact = 0, residual = 0;
};

OTGEN_BF16 inline __m256 upper_half(__m512 a) {
  return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
}

OTGEN_BF16 Norms to_bf16_pairs(const float* v, int64_t d, uint32_t* out) {
  for (int64_t k = 0; k < d; k += 32) {
    const int64_t n = std::min<int64_t>(32, d - k);
    const __mmask16 lo = n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
    const __mmask16 hi = n >= 32 ? 0xFFFF : n > 16 ? static_cast<__mmask16>((1u << (n - 16)) - 1) : 0;
    const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, v + k + 16), _mm512_maskz_loadu_ps(lo, v + k));
    const int64_t words = (n + 1) / 2;
    _mm512_mask_storeu_epi32(out + k / 2, words >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << words) - 1),
                             reinterpret_cast<const __m512i&>(b));
  }
  // The three squared norms in double, 8 lanes.
  __m512d rt = _mm512_setzero_pd(), ex = _mm512_setzero_pd(), rs = _mm512_setzero_pd();
  for (int64_t k = 0; k < d; k += 16) {
    const int64_t n = std::min<int64_t>(16, d - k);
    const __mmask16 live = n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
    const __mmask16 words = static_cast<__mmask16>((1u << ((n + 1) / 2)) - 1);
    const __m256i w = _mm256_maskz_loadu_epi32(static_cast<__mmask8>(words), out + k / 2);
    const __m512 t = _mm512_cvtpbh_ps(reinterpret_cast<const __m256bh&>(w));  // exact: bf16 -> float
    const __m512 e = _mm512_maskz_loadu_ps(live, v + k);
    for (int half = 0; half < 2; ++half) {
      const __m512d th = _mm512_cvtps_pd(half ? upper_half(t) : _mm512_castps512_ps256(t));
      const __m512d eh = _mm512_cvtps_pd(half ? upper_half(e) : _mm512_castps512_ps256(e));
      const __m512d r = _mm512_sub_pd(th, eh);
      rt = _mm512_fmadd_pd(th, th, rt), ex = _mm512_fmadd_pd(eh, eh, ex), rs = _mm512_fmadd_pd(r, r, rs);
    }
  }
  constexpr double up = 1 + 0x1p-40;  // the double sums' own rounding
  return {std::sqrt(_mm512_reduce_add_pd(rt)) * up, std::sqrt(_mm512_reduce_add_pd(ex)) * up,
          std::sqrt(_mm512_reduce_add_pd(rs)) * up};
}

}  // namespace
}  // namespace otgen::kernels

namespace otgen {

using kernels::kAmxPairs;
using kernels::kNR;

std::shared_ptr<const Bf16Columns> Bf16Columns::build(PointsView y, const Context& ctx, EnginePath path) {
  require(path == EnginePath::Avx512Bf16 || path == EnginePath::Amx, "path", std::string(engine_path_name(path)),
          "avx512bf16 or amx (the bf16 screen's kernels)");
  if (y.n <= 0 || y.d < 1 || !engine_path_unsupported(path).empty()) return nullptr;
  auto C = std::make_shared<Bf16Columns>();
  const int64_t m = y.n, d = y.d;
  C->y_ = y;
  C->amx_ = path == EnginePath::Amx;
  C->pairs_ = C->amx_ ? (d + 2 * kAmxPairs - 1) / (2 * kAmxPairs) * kAmxPairs : (d + 1) / 2;
  C->panels_ = (m + kNR - 1) / kNR;
  C->words_.assign(static_cast<size_t>(C->panels_ * C->pairs_ * kNR), 0u);
  for (auto* v : {&C->rounded_, &C->exact_, &C->residual_}) v->assign(static_cast<size_t>(m), 0.0);
  const int threads = kernels::team_size(ctx, C->panels_, static_cast<double>(m) * d * 4);
#pragma omp parallel num_threads(threads)
  {
    std::vector<uint32_t> row(static_cast<size_t>(C->pairs_));
#pragma omp for schedule(static)
    for (int64_t pn = 0; pn < C->panels_; ++pn)
      for (int64_t c = 0; c < kNR && pn * kNR + c < m; ++c) {
        const int64_t j = pn * kNR + c;
        const kernels::Norms s = kernels::to_bf16_pairs(y.row(j), d, row.data());
        uint32_t* dst = C->words_.data() + pn * C->pairs_ * kNR + c;
        for (int64_t q = 0; q < C->pairs_; ++q) dst[q * kNR] = row[q];
        C->rounded_[j] = s.rounded, C->exact_[j] = s.exact, C->residual_[j] = s.residual;
      }
  }
  return C;
}

}  // namespace otgen

namespace otgen::kernels {
namespace {

// One call's view of the columns: h padded with -inf to panels * 32, and the maxima of the bound over
// the unmasked columns.
struct PackedY {
  bool amx = false;
  int64_t pairs = 0, panels = 0;
  const uint32_t* words = nullptr;
  std::vector<float> h;
  double Yt = 0, Y = 0, Ry = 0, H = 0;
};

PackedY columns_for(const ScoreProblem& p, const Bf16Columns& C) {
  PackedY P;
  P.amx = C.path() == EnginePath::Amx;
  P.pairs = C.pairs(), P.panels = C.panels(), P.words = C.words();
  P.h.assign(static_cast<size_t>(P.panels * kNR), kNegInfF);
  for (int64_t j = 0; j < p.y.n; ++j) {
    const float hj = p.h.empty() ? 0.0f : p.h[j];
    P.h[j] = hj;
    if (hj == kNegInfF) continue;
    P.Yt = std::max(P.Yt, C.rounded_norms()[j]), P.Y = std::max(P.Y, C.exact_norms()[j]);
    P.Ry = std::max(P.Ry, C.residual_norms()[j]), P.H = std::max(P.H, static_cast<double>(std::abs(hj)));
  }
  return P;
}

// x~ rows (padded to a multiple of the strip height with zeros), and each row's threshold T_i (+inf: not screened).
struct PackedX {
  int64_t rows = 0;
  AlignedVector<uint32_t> words;
  std::vector<float> T;
};

PackedX pack_x(PointsView x, const PackedY& Y, int mr, int threads) {
  PackedX P;
  P.rows = (x.n + mr - 1) / mr * mr;
  P.words.assign(static_cast<size_t>(P.rows * Y.pairs), 0u);
  P.T.assign(static_cast<size_t>(P.rows), 0.0f);
  const double D = 2.0 * static_cast<double>(Y.pairs);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < x.n; ++i) {
    const Norms s = to_bf16_pairs(x.row(i), x.d, P.words.data() + i * Y.pairs);
    const double mag = 1.01 * s.rounded * Y.Yt + Y.H;
    // AMX's order and rounding of its accumulation are not specified: its sums get 2u (any faithful
    // rounding). Both kernels read bf16 subnormals as zero: 2^-126 sqrt(D) (|x~| + Y~) covers that.
    const double acc = gamma(D, Y.amx ? 2 * kU : kU) * s.rounded * Y.Yt + 2 * D * 0x1p-126 +
                       0x1p-126 * std::sqrt(D) * (s.rounded + Y.Yt);
    const double E = s.residual * Y.Y + s.rounded * Y.Ry + acc + kU * mag +
                     gamma(static_cast<double>(x.d + 1), 0x1p-53) * (s.exact * Y.Y + Y.H);
    const double T = (2 * E * (1 + 2 * kU) + 4 * kU * mag) * (1 + 0x1p-20);
    const bool screen = std::isfinite(T) && mag < 0x1p120;
    P.T[i] = screen ? std::nextafter(static_cast<float>(T), std::numeric_limits<float>::infinity())
                    : std::numeric_limits<float>::infinity();
  }
  return P;
}

struct Candidate {
  int64_t col;
  float v;  // the screened score
};

// Per (work item, row): the k best screened scores seen (a min-heap; kth = its least once full, else
// -inf) and the columns within T of kth.
struct RowState {
  float kth = kNegInfF;
  std::vector<float> top;
  std::vector<Candidate> cand;
  size_t prune_at = 64;  // next pruning size: doubles with what survives, so pruning stays O(pushes)
};

// Adds a screened score to the row's k best.
void keep_best(RowState& st, float v, int64_t k) {
  if (static_cast<int64_t>(st.top.size()) < k) {
    st.top.push_back(v);
    std::push_heap(st.top.begin(), st.top.end(), std::greater<>());
  } else {
    std::pop_heap(st.top.begin(), st.top.end(), std::greater<>());
    st.top.back() = v;
    std::push_heap(st.top.begin(), st.top.end(), std::greater<>());
  }
  if (static_cast<int64_t>(st.top.size()) == k) st.kth = st.top.front();
}

// The screen's lowest admissible score for a row: best - T, never -inf (masked columns stay out).
float threshold(float best, float T) { return std::max(best - T, -std::numeric_limits<float>::max()); }

// out (12 x 32 floats, row-major) = the 12 rows A (bf16 pairs, `pairs` words apart) times one panel.
// Named accumulators: with an array GCC 12 keeps copying them through the stack.
OTGEN_BF16 void kernel_12x32(const uint32_t* A, const uint32_t* B, int64_t pairs, float* out) {
#define OTGEN_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define OTGEN_DECL(r) __m512 c##r##a = _mm512_setzero_ps(), c##r##b = _mm512_setzero_ps();
#define OTGEN_STEP(r)                                                                             \
  {                                                                                               \
    const __m512i a = _mm512_set1_epi32(static_cast<int>(A[(r) * pairs + q]));                    \
    c##r##a = _mm512_dpbf16_ps(c##r##a, reinterpret_cast<const __m512bh&>(a), b0);               \
    c##r##b = _mm512_dpbf16_ps(c##r##b, reinterpret_cast<const __m512bh&>(a), b1);               \
  }
#define OTGEN_STORE(r)                          \
  _mm512_store_ps(out + (r) * kNR, c##r##a);    \
  _mm512_store_ps(out + (r) * kNR + 16, c##r##b);
  OTGEN_ROWS(OTGEN_DECL)
  for (int64_t q = 0; q < pairs; ++q) {
    const __m512i w0 = _mm512_loadu_si512(B + q * kNR), w1 = _mm512_loadu_si512(B + q * kNR + 16);
    const __m512bh b0 = reinterpret_cast<const __m512bh&>(w0), b1 = reinterpret_cast<const __m512bh&>(w1);
    OTGEN_ROWS(OTGEN_STEP)
  }
  OTGEN_ROWS(OTGEN_STORE)
#undef OTGEN_STORE
#undef OTGEN_STEP
#undef OTGEN_DECL
#undef OTGEN_ROWS
}

// The 32 rows A (bf16 pairs, `pairs` words apart, pairs a multiple of 16) times one panel (word q of
// column c at q * 32 + c: 16 pairs x 16 columns per B tile, as TDPBF16PS reads its second source), into
// the accumulator tiles 0..3. The tile unit works on them while the core goes on (amx_store waits).
OTGEN_AMX void amx_products(const uint32_t* A, const uint32_t* B, int64_t pairs) {
  const int64_t stride = pairs * 4;
  _tile_zero(0);  // the tile intrinsics are statements (inline asm), one per line
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t q = 0; q < pairs; q += kAmxPairs) {
    _tile_loadd(4, A + q, stride);
    _tile_loadd(5, A + 16 * pairs + q, stride);
    _tile_loadd(6, B + q * kNR, kNR * 4);
    _tile_loadd(7, B + q * kNR + 16, kNR * 4);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
}

// out (32 x 32 floats, row-major) = the accumulator tiles.
OTGEN_AMX void amx_store(float* out) {
  _tile_stored(0, out, kNR * 4);
  _tile_stored(1, out + 16, kNR * 4);
  _tile_stored(2, out + 16 * kNR, kNR * 4);
  _tile_stored(3, out + 16 * kNR + 16, kNR * 4);
}

// Folds one micro-tile row (32 screened scores of panel pn, h added here) into the row's state.
OTGEN_BF16 void fold_row(const float* s, const float* h, int64_t pn, float T, int64_t k, RowState& st) {
  const __m512 v0 = _mm512_add_ps(_mm512_load_ps(s), _mm512_loadu_ps(h));
  const __m512 v1 = _mm512_add_ps(_mm512_load_ps(s + 16), _mm512_loadu_ps(h + 16));
  alignas(64) float v[kNR];
  _mm512_store_ps(v, v0);
  _mm512_store_ps(v + 16, v1);
  const __m512 kv = _mm512_set1_ps(st.kth);
  const uint32_t above = static_cast<uint32_t>(_mm512_cmp_ps_mask(v0, kv, _CMP_GT_OQ)) |
                         (static_cast<uint32_t>(_mm512_cmp_ps_mask(v1, kv, _CMP_GT_OQ)) << 16);
  for (uint32_t m = above; m; m &= m - 1)  // rare once the row's k best are found
    if (const float a = v[std::countr_zero(m)]; a > st.kth) keep_best(st, a, k);
  const float thr = threshold(st.kth, T);
  const __m512 t = _mm512_set1_ps(thr);
  const uint32_t mask = static_cast<uint32_t>(_mm512_cmp_ps_mask(v0, t, _CMP_GE_OQ)) |
                        (static_cast<uint32_t>(_mm512_cmp_ps_mask(v1, t, _CMP_GE_OQ)) << 16);
  if (mask == 0) return;
  if (st.cand.size() >= st.prune_at) {  // drop the columns the better k-th best has ruled out
    std::erase_if(st.cand, [&](const Candidate& c) { return c.v < thr; });
    st.prune_at = std::max<size_t>(64, 2 * st.cand.size());
  }
  for (uint32_t m = mask; m; m &= m - 1) {
    const int c = std::countr_zero(m);
    st.cand.push_back({pn * kNR + c, v[c]});
  }
}

// Folds micro-tile `out` (rows s * mr.., panel pn) into the rows' states rs (indexed by row - s0 * mr).
OTGEN_BF16 void fold_tile(const PackedX& X, const PackedY& Y, const float* out, int mr, int64_t n, int64_t k,
                          int64_t s0, int64_t s, int64_t pn, RowState* rs) {
  const int64_t rows = std::min<int64_t>(mr, n - s * mr);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = s * mr + r;
    if (std::isinf(X.T[i])) continue;  // not screened: every column is re-scored
    fold_row(out + r * kNR, Y.h.data() + pn * kNR, pn, X.T[i], k, rs[i - s0 * mr]);
  }
}

// Screens strips [s0, s1) (kMR rows each) against panels [p0, p1); rs is indexed by row - s0 * kMR.
OTGEN_BF16 void screen(const PackedX& X, const PackedY& Y, int64_t n, int64_t k, int64_t s0, int64_t s1, int64_t p0,
                       int64_t p1, RowState* rs) {
  alignas(64) float out[kMR * kNR];
  for (int64_t g0 = p0; g0 < p1; g0 += kPanelsPerGroup) {
    const int64_t g1 = std::min(p1, g0 + kPanelsPerGroup);
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t pn = g0; pn < g1; ++pn) {
        kernel_12x32(X.words.data() + s * kMR * Y.pairs, Y.words + pn * Y.pairs * kNR, Y.pairs, out);
        fold_tile(X, Y, out, kMR, n, k, s0, s, pn, rs);
      }
  }
}

// The same on AMX tiles (kAmxMR rows a strip), in the same order: each tile's products run on the tile
// unit while the core folds the tile before it.
OTGEN_AMX void screen_amx(const PackedX& X, const PackedY& Y, int64_t n, int64_t k, int64_t s0, int64_t s1,
                          int64_t p0, int64_t p1, RowState* rs) {
  alignas(64) float out[2][kAmxMR * kNR];
  int64_t prev_s = -1, prev_pn = -1, t = 0;
  _tile_loadconfig(&kAmxTiles);
  for (int64_t g0 = p0; g0 < p1; g0 += kPanelsPerGroup) {
    const int64_t g1 = std::min(p1, g0 + kPanelsPerGroup);
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t pn = g0; pn < g1; ++pn, t ^= 1) {
        amx_products(X.words.data() + s * kAmxMR * Y.pairs, Y.words + pn * Y.pairs * kNR, Y.pairs);
        if (prev_s >= 0) fold_tile(X, Y, out[t ^ 1], kAmxMR, n, k, s0, prev_s, prev_pn, rs);
        amx_store(out[t]);
        prev_s = s, prev_pn = pn;
      }
  }
  if (prev_s >= 0) fold_tile(X, Y, out[t ^ 1], kAmxMR, n, k, s0, prev_s, prev_pn, rs);
  _tile_release();
}

// The k-th largest of the chunks' k best (-inf when they hold fewer than k).
float kth_best(const RowState* states, int64_t count, int64_t k) {
  std::vector<float> all;
  for (int64_t c = 0; c < count; ++c) all.insert(all.end(), states[c].top.begin(), states[c].top.end());
  if (static_cast<int64_t>(all.size()) < k) return kNegInfF;
  std::nth_element(all.begin(), all.begin() + (k - 1), all.end(), std::greater<>());
  return all[k - 1];
}

// The exact top k of row i over its surviving candidates (all unmasked columns if not screened), best
// first, ties to the lowest column; into index[0..k), value[0..k).
void rescore_row(const ScoreProblem& p, const PackedX& X, const PackedY& Y, const RowState* states, int64_t count,
                 int64_t i, int64_t k, bool argmax, int64_t* index, float* value) {
  const float* xi = p.x.row(i);
  std::vector<std::pair<double, int64_t>> scored;  // (exact score, column)
  auto consider = [&](int64_t col) { scored.emplace_back(exact_score(xi, p.y.row(col), p.x.d, Y.h[col]), col); };
  if (std::isinf(X.T[i])) {
    for (int64_t j = 0; j < p.y.n; ++j)
      if (Y.h[j] != kNegInfF) consider(j);
  } else {
    const float thr = threshold(kth_best(states, count, k), X.T[i]);
    for (int64_t c = 0; c < count; ++c)
      for (const Candidate& cd : states[c].cand)
        if (cd.v >= thr) consider(cd.col);
  }
  auto before = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  const int64_t got = std::min<int64_t>(k, static_cast<int64_t>(scored.size()));
  std::partial_sort(scored.begin(), scored.begin() + got, scored.end(), before);
  for (int64_t q = 0; q < got; ++q) index[q] = scored[q].second, value[q] = static_cast<float>(scored[q].first);
  // Fewer than k finite scores (masked columns, non-finite input): -inf entries as the fp32 engine makes
  // them, for the lowest columns not yet listed (argmax: the first unmasked column).
  for (int64_t q = got, j = 0; q < k; ++q, ++j) {
    while (std::find(index, index + q, j) != index + q || (argmax && Y.h[j] == kNegInfF)) ++j;
    index[q] = j, value[q] = kNegInfF;
  }
}

}  // namespace

void bf16_screened_topk(const ScoreProblem& p, const Bf16Columns& columns, int64_t k, bool argmax,
                        std::span<int64_t> index, std::span<float> value, const Context& ctx) {
  const int threads = team_size(ctx, p.x.n, static_cast<double>(p.x.n) * p.y.n * (p.x.d + 16));
  const PackedY Y = columns_for(p, columns);
  const int mr = Y.amx ? kAmxMR : kMR;
  const int64_t per_block = Y.amx ? kAmxStripsPerBlock : kStripsPerBlock, block_rows = per_block * mr;
  const PackedX X = pack_x(p.x, Y, mr, threads);
  const int64_t strips = X.rows / mr;
  const int64_t nb = (strips + per_block - 1) / per_block;
  const int64_t nc = std::clamp<int64_t>((8 * threads + nb - 1) / nb, 1, Y.panels);
  std::vector<std::vector<RowState>> state(static_cast<size_t>(nb * nc));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t item = 0; item < nb * nc; ++item) {
    const int64_t b = item / nc, c = item % nc;
    const int64_t s0 = b * per_block, s1 = std::min(strips, s0 + per_block);
    const int64_t p0 = Y.panels * c / nc, p1 = Y.panels * (c + 1) / nc;
    state[item].resize(static_cast<size_t>((s1 - s0) * mr));
    (Y.amx ? screen_amx : screen)(X, Y, p.x.n, k, s0, s1, p0, p1, state[item].data());
  }
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16)
  for (int64_t i = 0; i < p.x.n; ++i) {
    const int64_t b = i / block_rows, r = i - b * block_rows;
    std::vector<RowState> rows;  // this row's state in each column chunk
    rows.reserve(static_cast<size_t>(nc));
    for (int64_t c = 0; c < nc; ++c) rows.push_back(std::move(state[b * nc + c][r]));
    rescore_row(p, X, Y, rows.data(), nc, i, k, argmax, index.data() + i * k, value.data() + i * k);
  }
}

void bf16_row_topk(const ScoreProblem& p, EnginePath path, int64_t k, std::span<int64_t> index,
                   std::span<float> value, const Context& ctx) {
  bf16_screened_topk(p, *Bf16Columns::build(p.y, ctx, path), k, false, index, value, ctx);
}

void bf16_row_argmax(const ScoreProblem& p, EnginePath path, std::span<int64_t> index, std::span<float> value,
                     const Context& ctx) {
  bf16_screened_topk(p, *Bf16Columns::build(p.y, ctx, path), 1, true, index, value, ctx);
}

}  // namespace otgen::kernels
