// Internal: row_argmax through the bf16 screen (the avx512bf16 and amx paths of otgen/kernels/scores.h).
#pragma once

#include <cstdint>
#include <span>

#include "otgen/kernels/bf16_columns.h"
#include "otgen/core/context.h"
#include "otgen/kernels/scores.h"

namespace otgen::kernels {

// index[i] = the argmax of h_j + <x_i, y_j> evaluated in double (kernels/exact_score.h; lowest j on
// ties), value[i] = that maximum rounded to float: the contract of the int8 screen (otgen/kernels/lattice.h).
// The caller has validated p, the lengths, that some column is unmasked and that the CPU has the path.
// Results do not depend on the thread count.
// path: avx512bf16 or amx (the kernel).
void bf16_row_argmax(const ScoreProblem& p, EnginePath path, std::span<int64_t> index, std::span<float> value,
                     const Context& ctx);

// row_topk the same way: the k best of the double-evaluated scores (ties: lowest j first), values
// rounded to float; fewer than k finite scores: -inf entries for the lowest remaining columns, as the
// fp32 engine lists masked columns. 1 <= k <= m, validated by the caller.
void bf16_row_topk(const ScoreProblem& p, EnginePath path, int64_t k, std::span<int64_t> index,
                   std::span<float> value, const Context& ctx);

// Both through columns packed beforehand (p.y is columns.y()); argmax: k = 1 with row_argmax's rule for
// a row without a finite score (the first unmasked column).
void bf16_screened_topk(const ScoreProblem& p, const Bf16Columns& columns, int64_t k, bool argmax,
                        std::span<int64_t> index, std::span<float> value, const Context& ctx);

}  // namespace otgen::kernels
