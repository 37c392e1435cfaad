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

CostMoments half_sqeuclidean_moments(PointsView x, PointsView y, const Context& ctx, const ScoreOptions& opt) {
  const std::vector<float> nx = squared_norms(x), ny = squared_norms(y);
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(x.n, (int64_t{1} << 22) / std::max<int64_t>(1, y.n)));
  std::vector<float> s(static_cast<size_t>(block * y.n));
  double sum = 0, sum2 = 0;
  for (int64_t i0 = 0; i0 < x.n; i0 += block) {
    const int64_t rows = std::min(block, x.n - i0);
    std::span<float> out(s.data(), static_cast<size_t>(rows * y.n));
    score_matrix(ScoreProblem{PointsView{x.row(i0), rows, x.d}, y, {}}, out, ctx, opt);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < y.n; ++j) {
        const double c = std::max(0.0, 0.5 * nx[i0 + i] + 0.5 * ny[j] - static_cast<double>(s[i * y.n + j]));
        sum += c, sum2 += c * c;
      }
  }
  const double cnt = static_cast<double>(x.n) * static_cast<double>(y.n);
  CostMoments m;
  m.mean = sum / cnt;
  m.stddev = std::sqrt(std::max(0.0, sum2 / cnt - m.mean * m.mean));
  return m;
}

}  // namespace otgen::detail
