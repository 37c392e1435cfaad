#include "ot/cost_matrix.h"

#include <algorithm>
#include <cmath>

namespace otgen::detail {

std::vector<float> neg_inner_products(PointsView x, PointsView y, const Context& ctx, const ScoreOptions& opt) {
  std::vector<float> c(static_cast<size_t>(x.n * y.n));
  score_matrix(ScoreProblem{x, y, {}}, c, ctx, opt);
  for (float& v : c) v = -v;
  return c;
}

Points centred(PointsView x) {
  std::vector<double> mean(static_cast<size_t>(x.d), 0.0);
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t k = 0; k < x.d; ++k) mean[k] += x.row(i)[k];
  for (double& m : mean) m /= static_cast<double>(std::max<int64_t>(1, x.n));
  Points out(x.n, x.d);
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t k = 0; k < x.d; ++k) out.row(i)[k] = static_cast<float>(x.row(i)[k] - mean[k]);
  return out;
}

std::vector<double> half_sqeuclidean_matrix(PointsView x, PointsView y, const Context& ctx, const ScoreOptions& opt) {
  std::vector<float> s(static_cast<size_t>(x.n * y.n));
  score_matrix(ScoreProblem{x, y, {}}, s, ctx, opt);
  const std::vector<float> nx = squared_norms(x), ny = squared_norms(y);
  std::vector<double> c(s.size());
  for (int64_t i = 0; i < x.n; ++i)
    for (int64_t j = 0; j < y.n; ++j)
      c[i * y.n + j] = std::max(0.0, 0.5 * nx[i] + 0.5 * ny[j] - static_cast<double>(s[i * y.n + j]));
  return c;
}

CostMoments cost_moments(PointsView x, PointsView y, const Context& ctx, const ScoreOptions& opt, bool half,
                         std::span<const float> scores) {
  const std::vector<float> nx = squared_norms(x), ny = squared_norms(y);
  const int64_t m = y.n;
  std::vector<double> rs(static_cast<size_t>(x.n), 0.0), rs2(static_cast<size_t>(x.n), 0.0);
  // Rows [i0, i0 + rows) of C from their scores s.
  auto add_rows = [&](const float* s, int64_t i0, int64_t rows) {
#pragma omp parallel for num_threads(ctx.resolved_threads())
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < m; ++j) {
        const double sv = static_cast<double>(s[i * m + j]);
        const double c = half ? std::max(0.0, 0.5 * nx[i0 + i] + 0.5 * ny[j] - sv) : -sv;
        rs[i0 + i] += c, rs2[i0 + i] += c * c;
      }
  };
  if (!scores.empty()) {
    add_rows(scores.data(), 0, x.n);
  } else {
    const int64_t block = std::max<int64_t>(1, std::min<int64_t>(x.n, (int64_t{1} << 22) / std::max<int64_t>(1, m)));
    std::vector<float> s(static_cast<size_t>(block * m));
    for (int64_t i0 = 0; i0 < x.n; i0 += block) {
      const int64_t rows = std::min(block, x.n - i0);
      score_matrix(ScoreProblem{PointsView{x.row(i0), rows, x.d}, y, {}}, std::span<float>(s.data(), rows * m), ctx, opt);
      add_rows(s.data(), i0, rows);
    }
  }
  double sum = 0, sum2 = 0;
  for (int64_t i = 0; i < x.n; ++i) sum += rs[i], sum2 += rs2[i];
  const double cnt = static_cast<double>(x.n) * static_cast<double>(m);
  CostMoments mo;
  mo.mean = sum / cnt;
  mo.stddev = std::sqrt(std::max(0.0, sum2 / cnt - mo.mean * mo.mean));
  return mo;
}

}  // namespace otgen::detail
