// The general weighted SDE sampler (otgen/wfr/wfr.h).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>
#include <sstream>
#include <string>

#include "otgen/core/error.h"
#include "otgen/core/progress.h"
#include "otgen/kernels/scores.h"
#include "otgen/wfr/wfr.h"
#include "wfr/sampler_state.h"

namespace otgen::wfr {

using detail::check_step;
using detail::lse;

namespace {

class WeightedSde final : public Sampler {
 public:
  explicit WeightedSde(WeightedSdeOptions o) : o_(std::move(o)) { o_.validate(); }
  std::string name() const override { return "weighted-sde"; }
  bool weighted() const override { return true; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.log_z = 0.0; }
  bool step(State& s) override {
    const int64_t n = s.n, d = s.d;
    const double dt = o_.step, t = s.t;
    const double sigma = o_.sigma ? o_.sigma(t) : std::sqrt(2.0);
    require(sigma >= 0 && std::isfinite(sigma), "sigma", sigma, "a non-negative finite diffusion");
    std::vector<double> lp(n), dlp(n), g(n * d), lap(n), b(n * d), divb(n);
    o_.path(t, s.p.x.view(), PathPoint{lp, dlp, g, lap});
    s.grad_evals += n;
    for (int64_t i = 0; i < n; ++i) {
      bool ok = std::isfinite(lp[i]) && std::isfinite(dlp[i]) && std::isfinite(lap[i]);
      for (int64_t a = 0; ok && a < d; ++a) ok = std::isfinite(g[i * d + a]);
      if (!ok)
        throw Error("the path callback returned a non-finite value at step " + std::to_string(s.k) +
                    " for particle " + std::to_string(i));
    }
    if (o_.drift) {
      o_.drift(t, s.p.x.view(), g, DriftPoint{b, divb});
      for (int64_t i = 0; i < n; ++i) {
        bool ok = std::isfinite(divb[i]);
        for (int64_t a = 0; ok && a < d; ++a) ok = std::isfinite(b[i * d + a]);
        if (!ok)
          throw Error("the drift callback returned a non-finite value at step " + std::to_string(s.k) +
                      " for particle " + std::to_string(i));
      }
    } else {
      const double c = 0.5 * sigma * sigma;
      for (int64_t i = 0; i < n * d; ++i) b[i] = c * g[i];
      for (int64_t i = 0; i < n; ++i) divb[i] = c * lap[i];
    }
    std::vector<double> inc(n);
    for (int64_t i = 0; i < n; ++i) {
      double bg = 0, gg = 0;
      for (int64_t a = 0; a < d; ++a) {
        bg += b[i * d + a] * g[i * d + a];
        gg += g[i * d + a] * g[i * d + a];
      }
      const double rate = o_.drift ? dlp[i] + divb[i] + bg - 0.5 * sigma * sigma * (lap[i] + gg)
                                   : dlp[i];  // Langevin on p_t: the other terms cancel exactly
      inc[i] = s.p.logw[i] + rate * dt;
    }
    *s.log_z += lse(inc);
    s.p.logw = std::move(inc);
    s.p.normalise();
    s.rec.ess = s.p.ess();
    if (s.rec.ess < o_.ess_threshold * n) {
      // resample positions together with this step's drift rows
      const auto w = s.p.weights();
      const auto idx = resample_indices(w, n, o_.resample, s.rng);
      Points nx(n, d);
      std::vector<double> nb(n * d);
      for (int64_t j = 0; j < n; ++j) {
        std::copy(s.p.x.row(idx[j]), s.p.x.row(idx[j]) + d, nx.row(j));
        std::copy(b.begin() + idx[j] * d, b.begin() + idx[j] * d + d, nb.begin() + j * d);
      }
      s.p.x = std::move(nx);
      b = std::move(nb);
      std::fill(s.p.logw.begin(), s.p.logw.end(), -std::log(static_cast<double>(n)));
      ++s.resamplings;
      s.rec.resampled = true;
    }
    const double sq = sigma * std::sqrt(dt);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t a = 0; a < d; ++a) {
        float& v = s.p.x.row(i)[a];
        v = static_cast<float>(static_cast<double>(v) + dt * b[i * d + a] + sq * s.rng.normal());
      }
    return true;
  }

 private:
  WeightedSdeOptions o_;
};

}  // namespace

std::unique_ptr<Sampler> make_weighted_sde(WeightedSdeOptions o) { return std::make_unique<WeightedSde>(std::move(o)); }

}  // namespace otgen::wfr
