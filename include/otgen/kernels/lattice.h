// Exact argmax by int8 screening for data on an 8-bit lattice (images: Fashion-MNIST, the 8x8 digits).
//
// When every coordinate of the columns is y_ij = offset + step * u_ij with an integer u_ij in [0, 255]
// (up to float rounding, measured and accounted for), the scores S_ij = <x_i, y_j> + h_j can be
// screened with 8-bit integer dot products (AVX-512 VNNI: about 4x the multiply-add rate of float32
// FMA on the same core). Each row of x is quantised to int8 with its own scale, x_i = s_i q_i + r_i;
// the screen computes A_ij = <q_i, u_j> exactly in int32 and gives every column a rigorous interval
//     step * s_i * A_ij + h_j +- (step * max|r_i| * sum_k u_jk + rounding and lattice slack)
// that contains S_ij minus a per-row constant. Only the columns whose interval reaches the best lower
// bound of the row can be the argmax. With a good potential the top of a row is crowded (tens to
// hundreds of such columns on Fashion-MNIST), so the survivors are screened again with a second int8
// limb of the residual (r_i = s'_i q'_i + r'_i, intervals ~250x narrower, one row of u each), and the
// last few are re-scored in double precision. The result is the argmax of the scores computed in double (lowest j on ties): exact,
// and not float32's rounding of them, so it may differ from row_argmax(p, ...) on near-ties of ~1e-5.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "otgen/core/aligned.h"
#include "otgen/core/context.h"
#include "otgen/core/points.h"
#include "otgen/kernels/scores.h"

namespace otgen {

class LatticeColumns {
 public:
  // Detects the lattice of y and packs u for the screen. Returns nullptr when the screen cannot be
  // used: y is not on an 8-bit lattice (or n == 0, or holds a non-finite value), d > 65536 (int32
  // accumulators could overflow), or the CPU lacks AVX-512 VNNI. The result refers to y's memory
  // (for the exact re-scoring): keep y alive and unchanged while it is used.
  // amx = true packs for the AMX-INT8 first-limb kernel (tdpbsud, 32 x 32 micro-tiles) when
  // cpu_features().amx_int8 says the CPU and the OS allow it, and for the VNNI kernel otherwise (see amx()).
  // Both kinds give the same row_argmax, index and value, bit for bit (the int32 products are exact).
  static std::shared_ptr<const LatticeColumns> build(PointsView y, const Context& ctx, bool amx = false);
  // Whether this CPU has the instructions (AVX-512 F, BW and VNNI).
  static bool cpu_supported();

  PointsView y() const { return y_; }
  double offset() const { return offset_; }
  double step() const { return step_; }
  int levels() const { return levels_; }       // largest u_ij + 1 (<= 256)
  double deviation() const { return dev_; }    // max |y_ij - (offset + step u_ij)|, float rounding
  bool amx() const { return amx_; }            // the columns serve the AMX-INT8 kernel (else AVX-512 VNNI)

  // Internal layout (lattice.cpp): columns in panels of 32, 4 consecutive coordinates per int32 lane;
  // per quad and panel 2 x 64 bytes (columns 0-15, 16-31): for AMX, a B tile row of a 16-column half.
  int64_t quads() const { return quads_; }  // ceil(d / 4), for AMX rounded up to a multiple of 16 (zeros)
  int64_t panels() const { return panels_; }
  const uint8_t* packed() const { return packed_.data(); }
  const float* column_l1() const { return l1_.data(); }  // sum_k u_jk, padded to panels * 32
  float max_column_l1() const { return l1_max_; }
  int64_t row_bytes() const { return row_bytes_; }        // d rounded up to a multiple of 64
  const uint8_t* row(int64_t j) const { return rows_.data() + j * row_bytes_; }  // u_j, zero-padded

 private:
  PointsView y_;
  double offset_ = 0, step_ = 1, dev_ = 0;
  int levels_ = 0;
  bool amx_ = false;
  int64_t quads_ = 0, panels_ = 0, row_bytes_ = 0;
  AlignedVector<uint8_t> packed_, rows_;
  std::vector<float> l1_;
  float l1_max_ = 0;
};

// row_argmax (otgen/kernels/scores.h) through the screen: p.y must be the lattice's y (same memory). index[i]
// is the argmax of <x_i, y_j> + h_j evaluated in double, value[i] that maximum rounded to float.
// Same errors as row_argmax. Results do not depend on the thread count.
void row_argmax(const ScoreProblem& p, const LatticeColumns& lattice, std::span<int64_t> index,
                std::span<float> value, const Context& ctx);

}  // namespace otgen
