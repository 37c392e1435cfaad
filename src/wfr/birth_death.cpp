// Kernel-density reactions (otgen/wfr/wfr.h): birth-death Langevin and weighted WFR.
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

class BirthDeath final : public Sampler {
 public:
  explicit BirthDeath(BirthDeathOptions o) : o_(o) { o_.validate(); }
  std::string name() const override { return "birth-death"; }
  bool weighted() const override { return false; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.evaluate_current(); }
  bool step(State& s) override {
    const int64_t n = s.n, d = s.d;
    s.langevin_move(s.p.x, s.grad, o_.step);
    s.evaluate_current();
    const double h = o_.kde.bandwidth ? *o_.kde.bandwidth : kde_bandwidth(s.p.x.view(), {}, o_.kde.rule);
    const auto lrho = s.kde_log_density(h, false);
    std::vector<double> r(n);
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += (r[i] = lrho[i] - s.logp[i]);
    mean /= n;
    const Points x0 = s.p.x;
    const std::vector<double> lp0 = s.logp, g0 = s.grad;
    std::vector<char> touched(n, 0);
    int64_t jumps = 0;
    auto copy = [&](int64_t dst, int64_t src) {
      std::copy(x0.row(src), x0.row(src) + d, s.p.x.row(dst));
      s.logp[dst] = lp0[src];
      std::copy(g0.begin() + src * d, g0.begin() + src * d + d, s.grad.begin() + dst * d);
    };
    for (int64_t i = 0; i < n; ++i) {
      const double ri = r[i] - mean;
      const double u = s.rng.uniform();
      const int64_t jdraw = s.rng.below(n - 1);
      if (touched[i]) continue;
      if (u >= -std::expm1(-std::abs(ri) * o_.beta * o_.step)) continue;
      // a uniformly chosen other particle not yet involved in a jump this step
      int64_t j = jdraw >= i ? jdraw + 1 : jdraw;
      for (int tries = 0; touched[j] && tries < 64; ++tries) {
        j = s.rng.below(n - 1);
        if (j >= i) ++j;
      }
      if (touched[j]) continue;
      if (ri > 0) copy(i, j);  // kill i: it becomes a copy of j
      else copy(j, i);         // duplicate i over j
      touched[i] = touched[j] = 1;
      ++jumps;
    }
    s.rec.bandwidth = h;
    s.rec.jumps = jumps;
    return true;
  }

 private:
  BirthDeathOptions o_;
};

// ------------------------------------------------------------------------------------ weighted WFR

class WeightedWfr final : public Sampler {
 public:
  explicit WeightedWfr(WeightedWfrOptions o) : o_(std::move(o)) { o_.validate(); }
  std::string name() const override { return "wfr"; }
  bool weighted() const override { return true; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.evaluate_current(); }
  bool step(State& s) override {
    s.langevin_move(s.p.x, s.grad, o_.step);
    s.evaluate_current();
    const auto w = s.p.weights();
    const double h = o_.kde.bandwidth ? *o_.kde.bandwidth : kde_bandwidth(s.p.x.view(), w, o_.kde.rule);
    const auto lrho = s.kde_log_density(h, true);
    const double beta = o_.beta_schedule ? o_.beta_schedule(s.t) : o_.beta;
    require(beta >= 0 && std::isfinite(beta), "beta_schedule", beta, "non-negative finite values");
    for (int64_t i = 0; i < s.n; ++i) s.p.logw[i] -= beta * o_.step * (lrho[i] - s.logp[i]);
    s.p.normalise();
    s.rec.ess = s.p.ess();
    s.rec.bandwidth = h;
    if (s.rec.ess < o_.ess_threshold * s.n) s.resample(o_.resample);
    return true;
  }

 private:
  WeightedWfrOptions o_;
};


}  // namespace

std::unique_ptr<Sampler> make_birth_death(BirthDeathOptions o) { return std::make_unique<BirthDeath>(o); }
std::unique_ptr<Sampler> make_weighted_wfr(WeightedWfrOptions o) { return std::make_unique<WeightedWfr>(std::move(o)); }

}  // namespace otgen::wfr
