// Weighted particles: normalisation, ESS and the four resampling schemes.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "otgen/core/error.h"
#include "otgen/wfr/wfr.h"

namespace otgen::wfr {

ResampleScheme parse_resample_scheme(std::string_view name, std::string_view argument) {
  if (name == "multinomial") return ResampleScheme::Multinomial;
  if (name == "stratified") return ResampleScheme::Stratified;
  if (name == "systematic") return ResampleScheme::Systematic;
  if (name == "residual") return ResampleScheme::Residual;
  fail_argument(argument, name, "one of multinomial, stratified, systematic, residual");
}

const char* resample_scheme_name(ResampleScheme s) {
  switch (s) {
    case ResampleScheme::Multinomial: return "multinomial";
    case ResampleScheme::Stratified: return "stratified";
    case ResampleScheme::Systematic: return "systematic";
    case ResampleScheme::Residual: return "residual";
  }
  return "?";
}

namespace {

// Ancestors for sorted points u_0 <= ... <= u_{m-1} in [0, 1) against the cumulative weights.
void invert_sorted(std::span<const double> w, std::span<const double> u, std::vector<int64_t>& out) {
  const int64_t n = static_cast<int64_t>(w.size());
  int64_t i = 0;
  double c = w[0];
  for (double uk : u) {
    while (uk >= c && i + 1 < n) c += w[++i];
    out.push_back(i);
  }
}

// m sorted uniforms on (0, 1) by normalised exponential spacings (O(m), no sort).
std::vector<double> sorted_uniforms(int64_t m, Rng& rng) {
  std::vector<double> u(m);
  double s = 0;
  for (int64_t k = 0; k < m; ++k) {
    s += rng.exponential();
    u[k] = s;
  }
  s += rng.exponential();
  for (double& v : u) v /= s;
  return u;
}

}  // namespace

std::vector<int64_t> resample_indices(std::span<const double> weights, int64_t n, ResampleScheme scheme, Rng& rng) {
  require(!weights.empty(), "weights", "empty", "at least one weight");
  require(n >= 0, "n", n, "a non-negative count");
  double total = 0;
  // (messages are built only on failure: this runs every step)
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!(weights[i] >= 0 && std::isfinite(weights[i])))
      fail_argument("weights", to_text(weights[i]) + " at index " + std::to_string(i), "finite non-negative values");
    total += weights[i];
  }
  if (!(std::abs(total - 1.0) <= 1e-6)) fail_argument("weights", "sum " + to_text(total), "normalised weights (sum 1)");
  std::vector<int64_t> out;
  out.reserve(n);
  std::vector<double> u;
  switch (scheme) {
    case ResampleScheme::Multinomial:
      u = sorted_uniforms(n, rng);
      invert_sorted(weights, u, out);
      break;
    case ResampleScheme::Stratified:
      u.resize(n);
      for (int64_t k = 0; k < n; ++k) u[k] = (k + rng.uniform()) / n;
      invert_sorted(weights, u, out);
      break;
    case ResampleScheme::Systematic: {
      u.resize(n);
      const double U = rng.uniform();
      for (int64_t k = 0; k < n; ++k) u[k] = (k + U) / n;
      invert_sorted(weights, u, out);
      break;
    }
    case ResampleScheme::Residual: {
      const int64_t m = static_cast<int64_t>(weights.size());
      std::vector<double> res(m);
      int64_t fixed = 0;
      for (int64_t i = 0; i < m; ++i) {
        const double nw = n * weights[i];
        const int64_t c = static_cast<int64_t>(std::floor(nw));
        for (int64_t k = 0; k < c; ++k) out.push_back(i);
        fixed += c;
        res[i] = nw - c;
      }
      const int64_t rest = n - fixed;
      if (rest > 0) {
        double rs = 0;
        for (double r : res) rs += r;
        for (double& r : res) r /= rs;
        u = sorted_uniforms(rest, rng);
        invert_sorted(res, u, out);
        std::sort(out.begin(), out.end());
      }
      break;
    }
  }
  return out;
}

WeightedParticles::WeightedParticles(Points points) : x(std::move(points)), logw(x.n, 0.0) {}

void WeightedParticles::normalise() {
  double mx = -std::numeric_limits<double>::infinity();
  for (double v : logw) mx = std::max(mx, v);
  if (!std::isfinite(mx)) fail_argument("log-weights", mx, "at least one finite log-weight");
  double s = 0;
  for (double v : logw) s += std::exp(v - mx);
  const double lse = mx + std::log(s);
  for (double& v : logw) v -= lse;
}

std::vector<double> WeightedParticles::weights() const {
  // one exp per particle: w_i = exp(logw_i - max) / sum
  double mx = -std::numeric_limits<double>::infinity();
  for (double v : logw) mx = std::max(mx, v);
  if (!std::isfinite(mx)) fail_argument("log-weights", mx, "at least one finite log-weight");
  std::vector<double> w(logw.size());
  double s = 0;
  for (size_t i = 0; i < w.size(); ++i) s += (w[i] = std::exp(logw[i] - mx));
  for (double& v : w) v /= s;
  return w;
}

double WeightedParticles::ess() const {
  const auto w = weights();
  double s2 = 0;
  for (double v : w) s2 += v * v;
  return 1.0 / s2;
}

void WeightedParticles::resample(ResampleScheme scheme, Rng& rng) {
  const auto w = weights();
  const auto idx = resample_indices(w, x.n, scheme, rng);
  Points nx(x.n, x.d);
  for (int64_t k = 0; k < x.n; ++k) std::copy(x.row(idx[k]), x.row(idx[k]) + x.d, nx.row(k));
  x = std::move(nx);
  std::fill(logw.begin(), logw.end(), -std::log(static_cast<double>(x.n)));
}

}  // namespace otgen::wfr
