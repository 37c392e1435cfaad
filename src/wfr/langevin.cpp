// Langevin samplers (otgen/wfr/wfr.h): ULA and MALA.
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

// ------------------------------------------------------------------------------------------ ULA

class Ula final : public Sampler {
 public:
  explicit Ula(UlaOptions o) : o_(o) { o_.validate(); }
  std::string name() const override { return "ula"; }
  bool weighted() const override { return false; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.evaluate_current(); }
  bool step(State& s) override {
    s.langevin_move(s.p.x, s.grad, o_.step);
    s.evaluate_current();
    return true;
  }

 private:
  UlaOptions o_;
};

// ------------------------------------------------------------------------------------------ MALA

class Mala final : public Sampler {
 public:
  explicit Mala(MalaOptions o) : o_(o) { o_.validate(); }
  std::string name() const override { return "mala"; }
  bool weighted() const override { return false; }

 protected:
  double step_size() const override { return o_.step; }
  void begin(State& s) override { s.evaluate_current(); }
  bool step(State& s) override {
    Points y = s.p.x;
    s.langevin_move(y, s.grad, o_.step);
    std::vector<double> lpy(s.n), gy(s.n * s.d);
    s.evaluate(y.view(), lpy, gy);
    int64_t accepted = 0;
    std::vector<double> xi(s.d), yi(s.d);
    for (int64_t i = 0; i < s.n; ++i) {
      for (int64_t a = 0; a < s.d; ++a) {
        xi[a] = s.p.x.row(i)[a];
        yi[a] = y.row(i)[a];
      }
      const double la = mala_log_acceptance(xi, s.logp[i], {s.grad.data() + i * s.d, size_t(s.d)}, yi, lpy[i],
                                            {gy.data() + i * s.d, size_t(s.d)}, o_.step);
      if (std::log(s.rng.uniform()) < la) {
        std::copy(y.row(i), y.row(i) + s.d, s.p.x.row(i));
        s.logp[i] = lpy[i];
        std::copy(gy.begin() + i * s.d, gy.begin() + i * s.d + s.d, s.grad.begin() + i * s.d);
        ++accepted;
      }
    }
    s.rec.acceptance = static_cast<double>(accepted) / s.n;
    return true;
  }

 private:
  MalaOptions o_;
};

// ------------------------------------------------------------------------------------ birth-death


}  // namespace

std::unique_ptr<Sampler> make_ula(UlaOptions o) { return std::make_unique<Ula>(o); }
std::unique_ptr<Sampler> make_mala(MalaOptions o) { return std::make_unique<Mala>(o); }

}  // namespace otgen::wfr
