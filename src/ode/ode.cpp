// Explicit Runge-Kutta integration of batched flow ODEs (include/otgen/ode/ode.h holds the contract).
#include "otgen/ode/ode.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

#include "otgen/core/error.h"

namespace otgen {

OdeMethod parse_ode_method(std::string_view name, std::string_view argument) {
  for (OdeMethod m : {OdeMethod::Euler, OdeMethod::Midpoint, OdeMethod::Heun, OdeMethod::Rk4, OdeMethod::Dopri5})
    if (name == ode_method_name(m)) return m;
  fail_argument(argument, name, "one of euler, midpoint, heun, rk4, dopri5");
}

const char* ode_method_name(OdeMethod method) {
  switch (method) {
    case OdeMethod::Euler: return "euler";
    case OdeMethod::Midpoint: return "midpoint";
    case OdeMethod::Heun: return "heun";
    case OdeMethod::Rk4: return "rk4";
    case OdeMethod::Dopri5: return "dopri5";
  }
  return "?";
}

int64_t ode_nfe_per_step(OdeMethod method) {
  switch (method) {
    case OdeMethod::Euler: return 1;
    case OdeMethod::Midpoint: return 2;
    case OdeMethod::Heun: return 2;
    case OdeMethod::Rk4: return 4;
    case OdeMethod::Dopri5: return 6;
  }
  return 0;
}

void OdeOptions::validate() const {
  require(steps > 0, "--steps", steps, "a positive integer");
  require(std::isfinite(rtol) && rtol >= 0, "--rtol", rtol, "a finite number >= 0");
  require(std::isfinite(atol) && atol > 0, "--atol", atol, "a positive finite number");
  require(std::isfinite(t0), "--t0", t0, "a finite number");
  require(std::isfinite(t1) && t1 > t0, "--t1", t1, "a finite number > --t0 = " + to_text(t0));
  require(max_nfe > 0, "--max-nfe", max_nfe, "a positive integer");
}

namespace {

constexpr int kMaxStages = 7;

// An explicit Runge-Kutta tableau: a is stages x stages row-major (strictly lower triangular).
struct Tableau {
  int stages;
  const double* a;
  const double* b;
  const double* c;
};

constexpr double kEulerA[] = {0}, kEulerB[] = {1}, kEulerC[] = {0};
constexpr double kMidpointA[] = {0, 0, 0.5, 0}, kMidpointB[] = {0, 1}, kMidpointC[] = {0, 0.5};
constexpr double kHeunA[] = {0, 0, 1, 0}, kHeunB[] = {0.5, 0.5}, kHeunC[] = {0, 1};
constexpr double kRk4A[] = {0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 1, 0};
constexpr double kRk4B[] = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6}, kRk4C[] = {0, 0.5, 0.5, 1};

// Dormand-Prince 5(4): row 7 of a is the 5th-order weights b (FSAL); kDopriE = b - b_hat.
constexpr double kDopriA[] = {
    0, 0, 0, 0, 0, 0, 0,
    1.0 / 5, 0, 0, 0, 0, 0, 0,
    3.0 / 40, 9.0 / 40, 0, 0, 0, 0, 0,
    44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0, 0, 0,
    19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0, 0, 0,
    9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656, 0, 0,
    35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0};
constexpr double kDopriC[] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
constexpr double kDopriE[] = {71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40};

Tableau tableau(OdeMethod m) {
  switch (m) {
    case OdeMethod::Euler: return {1, kEulerA, kEulerB, kEulerC};
    case OdeMethod::Midpoint: return {2, kMidpointA, kMidpointB, kMidpointC};
    case OdeMethod::Heun: return {2, kHeunA, kHeunB, kHeunC};
    case OdeMethod::Rk4: return {4, kRk4A, kRk4B, kRk4C};
    case OdeMethod::Dopri5: return {7, kDopriA, kDopriA + 6 * 7, kDopriC};
  }
  return {0, nullptr, nullptr, nullptr};
}

std::string num(double v) {
  std::ostringstream os;
  os.precision(12);
  os << v;
  return os.str();
}

bool fits_float(double v) { return std::isfinite(static_cast<float>(v)); }

class Integrator {
 public:
  Integrator(const VelocityFn& v, std::span<float> x, const OdeOptions& opt, const OdeObserver& observe)
      : v_(v), x_(x), opt_(opt), observe_(observe), n_(x.size()), X_(x.begin(), x.end()), y_(n_) {
    res_.t = opt.t0;
  }

  OdeResult run() {
    if (observe_) observe_(opt_.t0, x_);
    if (opt_.method == OdeMethod::Dopri5) dopri5();
    else fixed(tableau(opt_.method));
    return std::move(res_);
  }

 private:
  // y = float(base + h sum_j coef[j] k[j]) over j < count (and, when out is given, out = that in double).
  void combine(const double* base, double h, const double* coef, int count, double* out = nullptr) {
    const float* kp[kMaxStages];
    double w[kMaxStages];
    int m = 0;
    for (int j = 0; j < count; ++j)
      if (coef[j] != 0) kp[m] = k_[j].data(), w[m++] = h * coef[j];
    for (size_t e = 0; e < n_; ++e) {
      double s = base[e];
      for (int q = 0; q < m; ++q) s += w[q] * kp[q][e];
      if (out) out[e] = s;
      y_[e] = static_cast<float>(s);
    }
  }

  // k[i] = v(t, y); false (and a NumericalFailure result) when an entry is not finite.
  bool eval(double t, int i) {
    std::vector<float>& k = k_[i];
    if (k.size() != n_) k.resize(n_);
    std::fill(k.begin(), k.end(), std::numeric_limits<float>::quiet_NaN());
    v_(t, y_, k);
    ++res_.nfe;
    for (size_t e = 0; e < n_; ++e)
      if (!std::isfinite(k[e]))
        return fail("non-finite velocity at t = " + num(t) + " (entry " + std::to_string(e) + " = " +
                    to_text(k[e]) + ")");
    return true;
  }

  bool fail(const std::string& what) {
    res_.termination = Termination::NumericalFailure;
    res_.message = what + "; x holds the state at t = " + num(res_.t);
    return false;
  }

  void accept(double t) {
    res_.t = t;
    ++res_.accepted;
    if (observe_) observe_(t, x_);
  }

  void fixed(const Tableau& tab) {
    const double t0 = opt_.t0, t1 = opt_.t1;
    const int64_t steps = opt_.steps;
    auto time = [&](int64_t k) {
      return k == steps ? t1 : t0 + static_cast<double>(k) * (t1 - t0) / static_cast<double>(steps);
    };
    for (int64_t step = 0; step < steps; ++step) {
      const double t = time(step), tn = time(step + 1), h = tn - t;
      for (int i = 0; i < tab.stages; ++i) {
        combine(X_.data(), h, tab.a + i * tab.stages, i);
        const double c = tab.c[i];
        if (!eval(c == 1 ? tn : std::min(t + c * h, tn), i)) return;
      }
      combine(X_.data(), h, tab.b, tab.stages, X_.data());
      if (!std::all_of(X_.begin(), X_.end(), fits_float))
        return void(fail("the state left the float range in the step to t = " + num(tn)));
      std::copy(y_.begin(), y_.end(), x_.begin());
      accept(tn);
    }
    res_.message = "reached t1 = " + num(t1) + " in " + std::to_string(steps) + " " + ode_method_name(opt_.method) +
                   " steps (" + std::to_string(res_.nfe) + " velocity evaluations)";
  }

  // RMS over the batch of (a_e / (atol + rtol |X_e|)); b optional (a - b).
  double scaled_rms(const float* a, const float* b = nullptr) const {
    double s = 0;
    for (size_t e = 0; e < n_; ++e) {
      const double d = b ? double(a[e]) - double(b[e]) : double(a[e]);
      const double r = d / (opt_.atol + opt_.rtol * std::abs(X_[e]));
      s += r * r;
    }
    return std::sqrt(s / static_cast<double>(n_));
  }

  // Hairer, Norsett & Wanner II.4 (DOPRI5's HINIT with the book's RMS norms); k[0] = v(t0, x0) is known.
  // Evaluates v once more (into k[1]); on a numerical failure res_ says so.
  double initial_step() {
    const double span = opt_.t1 - opt_.t0;
    double d0 = 0;
    for (size_t e = 0; e < n_; ++e) {
      const double r = X_[e] / (opt_.atol + opt_.rtol * std::abs(X_[e]));
      d0 += r * r;
    }
    d0 = std::sqrt(d0 / static_cast<double>(n_));
    const double d1 = scaled_rms(k_[0].data());
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = std::min(h0, span);
    const double one = 1;
    combine(X_.data(), h0, &one, 1);
    if (!eval(std::min(opt_.t0 + h0, opt_.t1), 1)) return 0;  // res_ records the failure
    const double d2 = scaled_rms(k_[1].data(), k_[0].data()) / h0;
    const double dm = std::max(d1, d2);
    const double h1 = dm <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / dm, 1.0 / 5);
    return std::min({100 * h0, h1, span});
  }

  void dopri5() {
    const Tableau tab = tableau(OdeMethod::Dopri5);
    const double t1 = opt_.t1;
    auto cap = [&](const std::string& what) {
      res_.termination = Termination::MaxSteps;
      res_.message = "--max-nfe = " + std::to_string(opt_.max_nfe) + " reached " + what + " at t = " +
                     num(res_.t) + " (t1 = " + num(t1) + ")";
    };
    if (opt_.max_nfe < 8) return cap("before the first step");
    std::vector<double> Xn(n_);
    double t = opt_.t0;
    combine(X_.data(), 0, nullptr, 0);
    if (!eval(t, 0)) return;
    double h = initial_step();
    if (res_.termination != Termination::Converged) return;
    bool rejected_last = false;
    while (t < t1) {
      if (res_.nfe + 6 > opt_.max_nfe) return cap("after " + std::to_string(res_.accepted) + " accepted steps");
      if (0.1 * std::abs(h) <= std::abs(t) * std::numeric_limits<double>::epsilon())
        return void(fail("step size underflow (h = " + num(h) + ") at t = " + num(t)));
      if (t + 1.01 * h >= t1) h = t1 - t;
      const double tn = t + h >= t1 ? t1 : t + h;
      for (int i = 1; i < tab.stages; ++i) {
        combine(X_.data(), h, tab.a + i * tab.stages, i, i + 1 == tab.stages ? Xn.data() : nullptr);
        if (!eval(i + 1 == tab.stages || tab.c[i] == 1 ? tn : std::min(t + tab.c[i] * h, tn), i)) return;
      }
      // Error estimate h sum_j E_j k_j, scaled by atol + rtol max(|x|, |x_new|); y_ holds float(x_new).
      double s = 0;
      bool fits = true;
      for (size_t e = 0; e < n_; ++e) {
        double d = 0;
        for (int j = 0; j < tab.stages; ++j) d += kDopriE[j] * k_[j][e];
        const double r = h * d / (opt_.atol + opt_.rtol * std::max(std::abs(X_[e]), std::abs(Xn[e])));
        s += r * r;
        fits = fits && std::isfinite(y_[e]);
      }
      const double err = std::sqrt(s / static_cast<double>(n_));
      if (!std::isfinite(err) || !fits)
        return void(fail("non-finite " + std::string(fits ? "error estimate" : "state") + " in the step from t = " +
                         num(t) + " to " + num(tn)));
      double factor = err == 0 ? 10 : std::clamp(0.9 * std::pow(err, -0.2), 0.2, 10.0);
      if (err <= 1) {
        t = tn;
        X_.swap(Xn);
        std::swap(k_[0], k_[tab.stages - 1]);  // FSAL: the last stage is v(t_new, x_new)
        std::copy(y_.begin(), y_.end(), x_.begin());
        accept(t);
        if (rejected_last) factor = std::min(factor, 1.0);
        rejected_last = false;
      } else {
        ++res_.rejected;
        rejected_last = true;
      }
      h *= factor;
    }
    res_.message = "reached t1 = " + num(t1) + " with dopri5: " + std::to_string(res_.accepted) + " accepted, " +
                   std::to_string(res_.rejected) + " rejected steps (" + std::to_string(res_.nfe) +
                   " velocity evaluations)";
  }

  const VelocityFn& v_;
  std::span<float> x_;
  const OdeOptions& opt_;
  const OdeObserver& observe_;
  size_t n_;
  std::vector<double> X_;  // the state in double
  std::vector<float> y_;   // the stage input handed to v
  std::vector<float> k_[kMaxStages];  // stage velocities
  OdeResult res_;
};

}  // namespace

OdeResult integrate_ode(const VelocityFn& v, std::span<float> x, const OdeOptions& opt, const OdeObserver& observe) {
  opt.validate();
  for (size_t e = 0; e < x.size(); ++e)
    if (!std::isfinite(x[e])) fail_argument("x[" + std::to_string(e) + "]", x[e], "finite values (the initial state)");
  if (x.empty()) {
    OdeResult r;
    r.t = opt.t1;
    r.message = "empty state: nothing to integrate";
    return r;
  }
  return Integrator(v, x, opt, observe).run();
}

}  // namespace otgen
