// The columns of the bf16 screen (the avx512bf16 and amx paths of otgen/kernels/scores.h), packed once for
// many searches against the same y: the semidiscrete fit and map keep one (like otgen/kernels/lattice.h's
// screen). row_argmax(p, ...) with path avx512bf16 or amx builds one per call; these overloads reuse it. The method,
// bound and contract are in docs/scores.md: index = the argmax (top k) of <x_i, y_j> + h_j evaluated
// in double, lowest j on ties; values = those scores rounded to float.
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

class Bf16Columns {
 public:
  // y rounded to bf16 in panels of 32 columns, with each column's norms, for the screen's kernel on
  // `path` (avx512bf16: vdpbf16ps; amx: AMX-BF16 tiles, coordinates padded to 32). nullptr when the CPU
  // cannot run that path or y has no points. Refers to y's memory (for the exact re-score): keep y
  // alive and unchanged while it is used.
  static std::shared_ptr<const Bf16Columns> build(PointsView y, const Context& ctx,
                                                  EnginePath path = EnginePath::Avx512Bf16);

  PointsView y() const { return y_; }
  EnginePath path() const { return amx_ ? EnginePath::Amx : EnginePath::Avx512Bf16; }
  // Internal layout (bf16_screen.cpp): word q (coordinates 2q, 2q + 1) of column 32 p + c at
  // (p * pairs + q) * 32 + c; per column |y~_j|, |y_j| and |y~_j - y_j| (rounded up).
  int64_t pairs() const { return pairs_; }
  int64_t panels() const { return panels_; }
  const uint32_t* words() const { return words_.data(); }
  const double* rounded_norms() const { return rounded_.data(); }
  const double* exact_norms() const { return exact_.data(); }
  const double* residual_norms() const { return residual_.data(); }

 private:
  PointsView y_;
  bool amx_ = false;
  int64_t pairs_ = 0, panels_ = 0;
  AlignedVector<uint32_t> words_;
  std::vector<double> rounded_, exact_, residual_;
};

// row_argmax / row_topk (otgen/kernels/scores.h) through the bf16 screen: p.y must be the columns' y (same
// memory). Same errors as row_argmax / row_topk. Results do not depend on the thread count.
void row_argmax(const ScoreProblem& p, const Bf16Columns& columns, std::span<int64_t> index,
                std::span<float> value, const Context& ctx);
void row_topk(const ScoreProblem& p, const Bf16Columns& columns, int64_t k, std::span<int64_t> index,
              std::span<float> value, const Context& ctx);

}  // namespace otgen
