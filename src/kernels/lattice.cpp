// Int8 screening for lattice data (otgen/kernels/lattice.h). The library is compiled for x86-64-v3; only the
// functions marked OTGEN_VNNI use AVX-512, and they run only after cpu_supported() said yes; those marked
// OTGEN_AMX also use AMX-INT8 tiles, only for columns built with amx (after cpu_features().amx_int8 said yes).
#include "otgen/kernels/lattice.h"

// GCC 12 warns inside its own _mm512_reduce_* / _mm512_set1_* (an undefined-start idiom): not ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "kernels/amx_tiles.h"
#include "kernels/exact_score.h"
#include "otgen/core/cpu_features.h"
#include "otgen/core/error.h"

#define OTGEN_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define OTGEN_AMX __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace otgen {
namespace {

constexpr int kMR = 12;            // rows per micro-kernel (12 x 32 int32 accumulators = 24 zmm)
constexpr int kMRAmx = 32;         // rows per AMX micro-kernel (2 x 2 tiles of 16 x 16 int32)
constexpr int kNR = 32;            // columns per panel
constexpr int64_t kBlockRows = 384;  // rows per block (32 VNNI strips, 12 AMX strips): the int8 rows stay in L2
constexpr int64_t kTileQuads = 16;   // quads per AMX tile load: 64 bytes of a row of q, 16 rows of a B tile
constexpr int64_t kMaxDim = 65536;       // 127 * 255 * 65536 < 2^31
constexpr float kNegInfF = -std::numeric_limits<float>::infinity();

// Distinct values of y, if there are at most 256 of them (sorted); empty otherwise.
std::vector<float> distinct_values(std::span<const float> v) {
  std::vector<float> s;
  for (float a : v) {
    auto it = std::lower_bound(s.begin(), s.end(), a);
    if (it != s.end() && *it == a) continue;
    if (s.size() == 256) return {};
    s.insert(it, a);
  }
  return s;
}

// Whether every value is offset + step * integer in [0, 255] (within 1e-3 of an integer).
bool on_lattice(std::span<const float> v, double offset, double step, int threads) {
  bool ok = true;
#pragma omp parallel for num_threads(threads) reduction(&& : ok) schedule(static)
  for (int64_t k = 0; k < static_cast<int64_t>(v.size()); ++k) {
    const double t = (v[k] - offset) / step;
    ok = ok && t > -0.5 && t < 255.5 && std::abs(t - std::nearbyint(t)) <= 1e-3;
  }
  return ok;
}

}  // namespace

bool LatticeColumns::cpu_supported() { return engine_path_unsupported(EnginePath::Vnni).empty(); }

std::shared_ptr<const LatticeColumns> LatticeColumns::build(PointsView y, const Context& ctx, bool amx) {
  if (y.n <= 0 || y.d < 1 || y.d > kMaxDim || !cpu_supported()) return nullptr;
  const std::span<const float> v = y.values();
  const int threads = ctx.resolved_threads();
  float lo = v[0], hi = v[0];
  bool finite = true;
#pragma omp parallel for num_threads(threads) reduction(min : lo) reduction(max : hi) reduction(&& : finite)
  for (int64_t k = 0; k < static_cast<int64_t>(v.size()); ++k) {
    lo = std::min(lo, v[k]);
    hi = std::max(hi, v[k]);
    finite = finite && std::isfinite(v[k]);
  }
  if (!finite) return nullptr;
  double step = hi > lo ? (static_cast<double>(hi) - lo) / 255.0 : 1.0;
  if (!on_lattice(v, lo, step, threads)) {
    // Fewer levels (e.g. the digits' 0..16): the smallest gap between distinct values is the step.
    const auto s = distinct_values(v);
    if (s.size() < 2) return nullptr;
    double gap = std::numeric_limits<double>::infinity();
    for (size_t k = 1; k < s.size(); ++k) gap = std::min(gap, static_cast<double>(s[k]) - s[k - 1]);
    step = gap;
    if (!on_lattice(v, lo, step, threads)) return nullptr;
  }

  auto L = std::make_shared<LatticeColumns>();
  L->y_ = y;
  L->offset_ = lo;
  L->step_ = step;
  L->amx_ = amx && cpu_features().amx_int8;  // cpu_features() also asked Linux for the tile-data permission
  L->quads_ = (y.d + 3) / 4;
  if (L->amx_) L->quads_ = (L->quads_ + kTileQuads - 1) / kTileQuads * kTileQuads;  // whole K tiles, zeros
  L->panels_ = (y.n + kNR - 1) / kNR;
  const int64_t Q = L->quads_;
  L->packed_.assign(static_cast<size_t>(L->panels_ * Q * 4 * kNR), 0);
  L->row_bytes_ = (y.d + 63) / 64 * 64;
  L->rows_.assign(static_cast<size_t>(y.n * L->row_bytes_), 0);
  L->l1_.assign(static_cast<size_t>(L->panels_ * kNR), 0.0f);
  double dev = 0;
  int top = 0;
#pragma omp parallel for num_threads(threads) reduction(max : dev, top) schedule(static)
  for (int64_t j = 0; j < y.n; ++j) {
    const int64_t p = j / kNR, c = j % kNR, half = c / 16, lane = c % 16;
    uint8_t* base = L->packed_.data() + p * Q * 4 * kNR;
    int64_t sum = 0;
    for (int64_t k = 0; k < y.d; ++k) {
      const double t = (y.row(j)[k] - lo) / step;
      const int u = static_cast<int>(std::nearbyint(t));
      dev = std::max(dev, std::abs(y.row(j)[k] - (lo + step * u)));
      top = std::max(top, u);
      sum += u;
      base[(k / 4) * 4 * kNR + half * 64 + lane * 4 + k % 4] = static_cast<uint8_t>(u);
      L->rows_[j * L->row_bytes_ + k] = static_cast<uint8_t>(u);
    }
    L->l1_[j] = static_cast<float>(sum);  // <= 255 * 65536: exact in float
  }
  L->dev_ = dev;
  L->levels_ = top + 1;
  L->l1_max_ = *std::max_element(L->l1_.begin(), L->l1_.end());
  return L;
}

namespace {

struct Candidate {
  int64_t col;
  float upper;
  int32_t a;  // <q_i, u_j>
};

// Per (work item, row): the best lower bound seen and the columns that may still win.
struct RowState {
  float lower = -std::numeric_limits<float>::max();
  std::vector<Candidate> cand;
  size_t prune_at = 64;  // next pruning size: doubles with what survives, so pruning stays O(pushes)
};

// The rows of x in int8, with per-row constants of the screen: x_i = s q + s' q' + r', |r'| <= s' / 2.
struct Quantised {
  int64_t n = 0, rows = 0, stride = 0;  // rows: n rounded up to the micro-kernel's; stride: 4 * quads bytes
  AlignedVector<int8_t> q;   // first limb, `stride` bytes per row (AMX: tile-major)
  AlignedVector<int8_t> q2;  // second limb, row_bytes per row
  std::vector<float> alpha, beta, slack;  // stage 1: score ~ alpha A + h, half-width beta * l1_j + slack
  std::vector<double> scale, scale2, beta2, slack2;  // stage 2: scale A + scale2 A' + h, beta2 l1_j + slack2
};

Quantised quantise(PointsView x, const LatticeColumns& L, double h_max, int mr, int threads) {
  Quantised Q;
  Q.n = x.n;
  Q.rows = (x.n + mr - 1) / mr * mr;
  Q.stride = 4 * L.quads();
  Q.q.assign(static_cast<size_t>(Q.rows * Q.stride), 0);
  Q.alpha.assign(static_cast<size_t>(Q.rows), 0.0f);
  Q.beta.assign(static_cast<size_t>(Q.rows), 0.0f);
  Q.slack.assign(static_cast<size_t>(Q.rows), 0.0f);
  Q.q2.assign(static_cast<size_t>(Q.rows * L.row_bytes()), 0);
  for (auto* v : {&Q.scale, &Q.scale2, &Q.beta2, &Q.slack2}) v->assign(static_cast<size_t>(Q.rows), 0.0);
  const double step = L.step(), l1max = L.max_column_l1();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < x.n; ++i) {
    const float* xi = x.row(i);
    double amax = 0, l1 = 0;
    for (int64_t k = 0; k < x.d; ++k) amax = std::max(amax, std::abs(static_cast<double>(xi[k]))), l1 += std::abs(xi[k]);
    const double s = amax > 0 ? amax / 127.0 : 1.0;
    const double s2 = s / 254.0;  // the first residual is within s / 2 = 127 s2
    double r = 0, r2 = 0;
    // AMX: each 32-row strip tile-major, [64-byte K step][32 rows][64 bytes], so that a strip streams in order.
    const bool tiled = mr == kMRAmx;
    int8_t* qi = tiled ? Q.q.data() + (i / kMRAmx) * kMRAmx * Q.stride + (i % kMRAmx) * 64 : Q.q.data() + i * Q.stride;
    int8_t* q2i = Q.q2.data() + i * L.row_bytes();
    for (int64_t k = 0; k < x.d; ++k) {
      const double t = std::clamp(std::nearbyint(xi[k] / s), -127.0, 127.0);
      const double res = xi[k] - s * t;
      const double t2 = std::clamp(std::nearbyint(res / s2), -127.0, 127.0);
      qi[tiled ? (k / 64) * (kMRAmx * 64) + k % 64 : k] = static_cast<int8_t>(t);
      q2i[k] = static_cast<int8_t>(t2);
      r = std::max(r, std::abs(res));
      r2 = std::max(r2, std::abs(res - s2 * t2));
    }
    // True score minus the row constant offset * sum_k x_ik lies in alpha A_ij + h_j +- (step r l1_j + E):
    // E covers the lattice deviation and every float rounding of the screen (generously: 2^-18).
    const double scale = step * s;
    const double mag = scale * 127.0 * l1max + h_max + step * r * l1max;
    const double slack = L.deviation() * l1 + std::ldexp(mag, -18) + 1e-30;
    Q.scale[i] = scale;
    Q.scale2[i] = step * s2;
    Q.beta2[i] = step * r2 * (1 + 1e-9);
    Q.slack2[i] = L.deviation() * l1 * (1 + 1e-9) + 1e-12 * mag;  // stage 2 is in double
    Q.alpha[i] = static_cast<float>(scale);
    Q.beta[i] = static_cast<float>(step * r * (1 + 1e-5));
    Q.slack[i] = static_cast<float>(slack * (1 + 1e-5));
  }
  return Q;
}

// acc (12 x 32 int32, row-major) = the rows A (int8, `stride` bytes apart) times one packed panel.
// Named accumulators: with an array GCC 12 keeps copying them through the stack.
OTGEN_VNNI void kernel_12x32(const int8_t* A, int64_t stride, const uint8_t* B, int64_t quads, int32_t* acc) {
#define OTGEN_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define OTGEN_DECL(r) __m512i c##r##a = _mm512_setzero_si512(), c##r##b = _mm512_setzero_si512();
#define OTGEN_STEP(r)                                                       \
  {                                                                         \
    int32_t w;                                                              \
    std::memcpy(&w, A + (r) * stride + 4 * kq, 4);                          \
    const __m512i a = _mm512_set1_epi32(w);                                 \
    c##r##a = _mm512_dpbusd_epi32(c##r##a, b0, a);                          \
    c##r##b = _mm512_dpbusd_epi32(c##r##b, b1, a);                          \
  }
#define OTGEN_STORE(r)                                \
  _mm512_store_si512(acc + (r) * kNR, c##r##a);       \
  _mm512_store_si512(acc + (r) * kNR + 16, c##r##b);
  OTGEN_ROWS(OTGEN_DECL)
  for (int64_t kq = 0; kq < quads; ++kq) {
    const __m512i b0 = _mm512_loadu_si512(B + kq * 128), b1 = _mm512_loadu_si512(B + kq * 128 + 64);
    OTGEN_ROWS(OTGEN_STEP)
  }
  OTGEN_ROWS(OTGEN_STORE)
#undef OTGEN_STORE
#undef OTGEN_STEP
#undef OTGEN_DECL
#undef OTGEN_ROWS
}

// Folds a micro-tile's products (acc: `rows` rows of 32 int32 against panel p) into the states of rows
// i0.. (rs indexed by row - r0): lower bounds and the columns whose interval reaches them.
OTGEN_VNNI inline __attribute__((always_inline)) void fold(const Quantised& Q, const LatticeColumns& L, const float* h,
                                                           int64_t p, const int32_t* acc, int64_t i0, int64_t rows,
                                                           int64_t r0, RowState* rs) {
  const __m512 h0 = _mm512_loadu_ps(h + p * kNR), h1 = _mm512_loadu_ps(h + p * kNR + 16);
  const __m512 u0 = _mm512_loadu_ps(L.column_l1() + p * kNR), u1 = _mm512_loadu_ps(L.column_l1() + p * kNR + 16);
  for (int r = 0; r < rows; ++r) {
    const int64_t i = i0 + r;
    const __m512 al = _mm512_set1_ps(Q.alpha[i]), be = _mm512_set1_ps(Q.beta[i]), sl = _mm512_set1_ps(Q.slack[i]);
    const __m512 a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(acc + r * kNR)), al, h0);
    const __m512 a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(acc + r * kNR + 16)), al, h1);
    const __m512 w0 = _mm512_fmadd_ps(u0, be, sl), w1 = _mm512_fmadd_ps(u1, be, sl);
    RowState& st = rs[i - r0];
    const float lower = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_sub_ps(a0, w0), _mm512_sub_ps(a1, w1)));
    st.lower = std::max(st.lower, lower);
    const __m512 lb = _mm512_set1_ps(st.lower);
    const __mmask16 m0 = _mm512_cmp_ps_mask(_mm512_add_ps(a0, w0), lb, _CMP_GE_OQ);
    const __mmask16 m1 = _mm512_cmp_ps_mask(_mm512_add_ps(a1, w1), lb, _CMP_GE_OQ);
    if ((m0 | m1) == 0) continue;
    alignas(64) float up[kNR];
    _mm512_store_ps(up, _mm512_add_ps(a0, w0));
    _mm512_store_ps(up + 16, _mm512_add_ps(a1, w1));
    const uint32_t mask = static_cast<uint32_t>(m0) | (static_cast<uint32_t>(m1) << 16);
    if (st.cand.size() >= st.prune_at) {  // drop the columns the better lower bound has ruled out
      std::erase_if(st.cand, [&](const Candidate& c) { return c.upper < st.lower; });
      st.prune_at = std::max<size_t>(64, 2 * st.cand.size());
    }
    for (uint32_t bits = mask; bits != 0; bits &= bits - 1) {  // the set bits in increasing order
      const int c = __builtin_ctz(bits);
      st.cand.push_back({p * kNR + c, up[c], acc[r * kNR + c]});
    }
  }
}

// Screens rows [s0, s1) x kMR against panels [p0, p1): updates the row states (indexed by row - s0 * kMR).
OTGEN_VNNI void screen(const Quantised& Q, const LatticeColumns& L, const float* h, int64_t s0, int64_t s1,
                       int64_t p0, int64_t p1, RowState* rs) {
  const int64_t quads = L.quads();
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* B = L.packed() + p * quads * 4 * kNR;
    for (int64_t s = s0; s < s1; ++s) {
      alignas(64) int32_t acc[kMR * kNR];
      kernel_12x32(Q.q.data() + s * kMR * Q.stride, Q.stride, B, quads, acc);
      fold(Q, L, h, p, acc, s * kMR, std::min<int64_t>(kMR, Q.n - s * kMR), s0 * kMR, rs);
    }
  }
}

// acc (32 x 32 int32, row-major, 64-byte aligned) = a strip of 32 rows A (int8, tile-major: per 64-byte K
// step, 32 rows of 64 bytes) times one packed panel (quads a multiple of 16). The tile configuration must
// be loaded. tdpbsud: first source signed (q), second unsigned (u), exact int32 sums.
OTGEN_AMX void kernel_amx_32x32(const int8_t* A, const uint8_t* B, int64_t quads, int32_t* acc) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t kq = 0; kq < quads; kq += kTileQuads) {
    const int8_t* a = A + kq * 4 * kMRAmx;  // 2 KB per K step: rows 0-15, then 16-31
    _tile_loadd(4, a, 64);
    _tile_loadd(6, B + kq * 128, 128);
    _tile_loadd(7, B + kq * 128 + 64, 128);
    _tile_dpbsud(0, 4, 6);
    _tile_loadd(5, a + 1024, 64);
    _tile_dpbsud(1, 4, 7);
    _tile_dpbsud(2, 5, 6);
    _tile_dpbsud(3, 5, 7);
  }
  _tile_stored(0, acc, 4 * kNR);
  _tile_stored(1, acc + 16, 4 * kNR);
  _tile_stored(2, acc + 16 * kNR, 4 * kNR);
  _tile_stored(3, acc + 16 * kNR + 16, 4 * kNR);
}

// screen() with the AMX kernel: rows [s0, s1) x kMRAmx (Q.rows a multiple of 32), rs indexed by row - s0 * kMRAmx.
// Loads the tile configuration for this thread and releases the tiles before returning.
OTGEN_AMX void screen_amx(const Quantised& Q, const LatticeColumns& L, const float* h, int64_t s0, int64_t s1,
                          int64_t p0, int64_t p1, RowState* rs) {
  const int64_t quads = L.quads();
  // Two result buffers: strip s's products are computed (the tile unit works alone) while strip s - 1's are
  // folded, in the same order as without the overlap.
  alignas(64) int32_t acc[2][kMRAmx * kNR];
#define OTGEN_FOLD_STRIP(p, s) \
  fold(Q, L, h, p, acc[(s) & 1], (s) * kMRAmx, std::min<int64_t>(kMRAmx, Q.n - (s) * kMRAmx), s0 * kMRAmx, rs)
  _tile_loadconfig(&kernels::kAmxTiles);
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* B = L.packed() + p * quads * 4 * kNR;
    for (int64_t s = s0; s < s1; ++s) {
      kernel_amx_32x32(Q.q.data() + s * kMRAmx * Q.stride, B, quads, acc[s & 1]);
      if (s > s0) OTGEN_FOLD_STRIP(p, s - 1);
    }
    OTGEN_FOLD_STRIP(p, s1 - 1);
  }
#undef OTGEN_FOLD_STRIP
  _tile_release();
}

// <u, q> over `bytes` (a multiple of 64) bytes: u unsigned, q signed.
OTGEN_VNNI int32_t dot_row(const uint8_t* u, const int8_t* q, int64_t bytes) {
  __m512i acc = _mm512_setzero_si512();
  for (int64_t k = 0; k < bytes; k += 64)
    acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(u + k), _mm512_loadu_si512(q + k));
  return _mm512_reduce_add_epi32(acc);
}

}  // namespace

void row_argmax(const ScoreProblem& p, const LatticeColumns& L, std::span<int64_t> index, std::span<float> value,
                const Context& ctx) {
  p.validate();
  require(p.y.data == L.y().data && p.y.n == L.y().n && p.y.d == L.y().d, "lattice",
          "columns of shape (" + std::to_string(L.y().n) + ", " + std::to_string(L.y().d) + ")",
          "the lattice built from this problem's y");
  require(static_cast<int64_t>(index.size()) == p.x.n, "index", "length " + std::to_string(index.size()),
          "length " + std::to_string(p.x.n));
  require(static_cast<int64_t>(value.size()) == p.x.n, "value", "length " + std::to_string(value.size()),
          "length " + std::to_string(p.x.n));
  const int64_t m = p.y.n;
  std::vector<float> h(static_cast<size_t>(L.panels() * kNR), kNegInfF);
  double h_max = 0;
  bool any = false;
  for (int64_t j = 0; j < m; ++j) {
    h[j] = p.h.empty() ? 0.0f : p.h[j];
    if (std::isinf(h[j])) continue;
    any = true;
    h_max = std::max(h_max, std::abs(static_cast<double>(h[j])));
  }
  if (p.x.n == 0) return;
  require(any, "y", std::to_string(m) + " points, all masked", "at least one unmasked point");

  const int threads = ctx.resolved_threads();
  const int mr = L.amx() ? kMRAmx : kMR;
  const Quantised Q = quantise(p.x, L, h_max, mr, threads);
  const int64_t strips = Q.rows / mr, strips_per_block = kBlockRows / mr;
  const int64_t nb = (strips + strips_per_block - 1) / strips_per_block;
  const int64_t nc = std::clamp<int64_t>((8 * threads + nb - 1) / nb, 1, L.panels());
  std::vector<std::vector<RowState>> state(static_cast<size_t>(nb * nc));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t item = 0; item < nb * nc; ++item) {
    const int64_t b = item / nc, c = item % nc;
    const int64_t s0 = b * strips_per_block, s1 = std::min(strips, s0 + strips_per_block);
    const int64_t p0 = L.panels() * c / nc, p1 = L.panels() * (c + 1) / nc;
    state[item].resize(static_cast<size_t>((s1 - s0) * mr));
    if (L.amx())
      screen_amx(Q, L, h.data(), s0, s1, p0, p1, state[item].data());
    else
      screen(Q, L, h.data(), s0, s1, p0, p1, state[item].data());
  }
  // Stage 2: the survivors against the second limb (row-major u, double); stage 3: the exact score of
  // the few left, in double.
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16)
  for (int64_t i = 0; i < p.x.n; ++i) {
    const int64_t b = i / kBlockRows, r = i - b * kBlockRows;
    float lower = -std::numeric_limits<float>::max();
    for (int64_t c = 0; c < nc; ++c) lower = std::max(lower, state[b * nc + c][r].lower);
    std::vector<std::pair<int64_t, double>> left;  // (column, stage-2 upper bound)
    double lower2 = -std::numeric_limits<double>::infinity();
    const int8_t* q2 = Q.q2.data() + i * L.row_bytes();
    for (int64_t c = 0; c < nc; ++c)
      for (const Candidate& cd : state[b * nc + c][r].cand) {
        if (cd.upper < lower) continue;
        const double a = Q.scale[i] * cd.a + Q.scale2[i] * dot_row(L.row(cd.col), q2, L.row_bytes()) + h[cd.col];
        const double w = Q.beta2[i] * L.column_l1()[cd.col] + Q.slack2[i];
        lower2 = std::max(lower2, a - w);
        left.emplace_back(cd.col, a + w);
      }
    double best = -std::numeric_limits<double>::infinity();
    int64_t arg = -1;
    const float* xi = p.x.row(i);
    for (const auto& [col, upper] : left) {
      if (upper < lower2) continue;
      const double sc = kernels::exact_score(xi, p.y.row(col), p.x.d, h[col]);
      if (sc > best || (sc == best && col < arg)) best = sc, arg = col;
    }
    index[i] = arg;
    value[i] = static_cast<float>(best);
  }
}

}  // namespace otgen
