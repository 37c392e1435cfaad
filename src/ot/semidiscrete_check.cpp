// Semidiscrete marginal checks (SPEC.md §1): chi2 of the second marginal on fresh noise, its
// standard deviation, the TV estimate and its noise floor, and how they are printed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>

#include "ot/semidiscrete_internal.h"
#include "otgen/core/error.h"
#include "otgen/core/rng.h"
#include "otgen/ot/semidiscrete.h"
#include "otgen/core/streams.h"

namespace otgen {

namespace sdot_detail {

constexpr double kInf = std::numeric_limits<double>::infinity();

double tv_floor(std::span<const double> b, int64_t M, uint64_t seed) {
  std::vector<double> cum(b.size());
  std::partial_sum(b.begin(), b.end(), cum.begin());
  std::vector<int64_t> counts(b.size(), 0);
  Rng r(stream_key(seed, Stream::Floor));
  for (int64_t t = 0; t < M; ++t) {
    const double u = r.uniform() * cum.back();
    int64_t j = std::min<int64_t>(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin(),
                                  static_cast<int64_t>(b.size()) - 1);
    while (b[j] <= 0 && j > 0) --j;
    ++counts[j];
  }
  double tv = 0;
  for (size_t j = 0; j < b.size(); ++j) tv += std::abs(static_cast<double>(counts[j]) / M - b[j]);
  return 0.5 * tv;
}

SdotMarginalStats marginal_stats(const Prepared& P, std::span<const double> g, double eps, int64_t batch,
                                 int64_t repeats, uint64_t seed, const Context& ctx, const ScoreOptions& engine,
                                 std::vector<double>* repeat_chi2) {
  std::vector<double> s1(static_cast<size_t>(P.N), 0.0), s2(static_cast<size_t>(P.N), 0.0);
  std::vector<double> r1, r2;
  if (repeat_chi2) repeat_chi2->clear();
  for (int64_t r = 0; r < repeats; ++r) {
    const Points x = draw_noise(P, seed, Stream::Check, static_cast<uint64_t>(r), batch, ctx);
    const auto xl = draw_classes(P, seed, Stream::Check, static_cast<uint64_t>(r), batch);
    if (!repeat_chi2) {
      accumulate_batch(P, x, xl, g, eps, s1, s2, ctx, engine);
      continue;
    }
    r1.assign(s1.size(), 0.0);
    r2.assign(s2.size(), 0.0);
    accumulate_batch(P, x, xl, g, eps, r1, r2, ctx, engine);
    for (size_t j = 0; j < s1.size(); ++j) s1[j] += r1[j], s2[j] += r2[j];
    repeat_chi2->push_back(sdot_chi2_estimate(gather_points(P, r1), gather_points(P, r2), P.all_b(), batch));
  }
  // Sharded: the column sums of every rank, gathered, so every sum below runs in the single-process order.
  if (P.sharded()) s1 = gather_points(P, s1), s2 = gather_points(P, s2);
  const std::span<const double> b = P.all_b();
  SdotMarginalStats st;
  const int64_t M = batch * repeats;
  st.draws = M;
  st.chi2 = sdot_chi2_estimate(s1, s2, b, M);
  double tv = 0, lo = kInf, hi = -kInf;
  for (size_t j = 0; j < b.size(); ++j) {
    const double m = s1[j] / static_cast<double>(M);
    tv += std::abs(m - b[j]);
    if (b[j] > 0) {
      lo = std::min(lo, m / b[j]);
      hi = std::max(hi, m / b[j]);
      if (s1[j] == 0) ++st.empty;
    }
  }
  st.tv = 0.5 * tv;
  st.min_ratio = lo;
  st.max_ratio = hi;
  if (eps <= 0) {
    st.tv_floor = tv_floor(b, M, seed);
    if (M >= 3) {
      st.chi2_sd = sdot_chi2_sd(s1, b, M);
      st.tv_bound = std::min(1.0, 0.5 * std::sqrt(std::max(0.0, st.chi2 + 2 * *st.chi2_sd)));  // TV <= 1
    }
  }
  return st;
}


}  // namespace sdot_detail

double sdot_chi2_estimate(std::span<const double> col_sum, std::span<const double> col_sum_sq,
                          std::span<const double> b, int64_t B) {
  require(B >= 2, "B", B, "at least 2 rows for the unbiased chi2 estimate");
  require(col_sum.size() == b.size() && col_sum_sq.size() == b.size(), "col_sum",
          "length " + std::to_string(col_sum.size()), "the length of b, " + std::to_string(b.size()));
  double s = 0;
  for (size_t j = 0; j < b.size(); ++j) {
    if (b[j] <= 0) continue;
    s += (col_sum[j] * col_sum[j] - col_sum_sq[j]) / b[j];
  }
  return s / (static_cast<double>(B) * static_cast<double>(B - 1)) - 1.0;
}

double sdot_chi2_sd(std::span<const double> counts, std::span<const double> b, int64_t M) {
  require(M >= 3, "M", M, "at least 3 draws");
  require(counts.size() == b.size(), "counts", "length " + std::to_string(counts.size()),
          "the length of b, " + std::to_string(b.size()));
  // Unbiased estimates of sum m^2 / b (S2), sum m^2 / b^2 (S2b) and sum m^3 / b^2 (S3) from the
  // factorial moments of the counts: E[c (c - 1)] = M (M - 1) m^2, E[c (c - 1) (c - 2)] = M (M - 1) (M - 2) m^3.
  const double Md = static_cast<double>(M), pairs = Md * (Md - 1), triples = pairs * (Md - 2);
  double S2 = 0, S2b = 0, S3 = 0;
  for (size_t j = 0; j < b.size(); ++j) {
    if (b[j] <= 0) continue;
    const double c = counts[j], f2 = c * (c - 1), f3 = f2 * (c - 2);
    S2 += f2 / pairs / b[j];
    S2b += f2 / pairs / (b[j] * b[j]);
    S3 += f3 / triples / (b[j] * b[j]);
  }
  // zeta1 = Var_x(m_x / b_x) = sum m^3 / b^2 - (sum m^2 / b)^2; zeta2 = Var(h) = sum m^2/b^2 - 2 sum m^2/b + 1 - chi2^2.
  const double zeta1 = std::max(0.0, S3 - S2 * S2);
  const double zeta2 = std::max(0.0, S2b - 2 * S2 + 1 - (S2 - 1) * (S2 - 1));
  return std::sqrt(4 * (Md - 2) / pairs * zeta1 + 2 / pairs * zeta2);
}

std::string sdot_chi2_text(double chi2, std::optional<double> sd, double target) {
  char buf[160];
  int k = std::snprintf(buf, sizeof buf, "chi2 = %.2g", chi2);
  if (sd) k += std::snprintf(buf + k, sizeof buf - k, " +- %.2g", *sd);
  k += std::snprintf(buf + k, sizeof buf - k, " (unbiased estimate%s", chi2 < 0 ? ", can be < 0" : "");
  if (target > 0) k += std::snprintf(buf + k, sizeof buf - k, "; target %g %s", target, chi2 <= target ? "met" : "not met");
  std::snprintf(buf + k, sizeof buf - k, ")");
  return buf;
}

}  // namespace otgen
