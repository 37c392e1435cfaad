// ODE integrator (include/otgen/ode/ode.h): convergence orders, exact NFE counts, dopri5 accuracy against
// closed forms, failure handling, option errors and the flow-matching closed-form field.
#include "otgen/ode/ode.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "test_util.h"

namespace otgen {
namespace {

constexpr OdeMethod kFixed[] = {OdeMethod::Euler, OdeMethod::Midpoint, OdeMethod::Heun, OdeMethod::Rk4};

// A = [[-a, -w], [w, -a]] (rotation + decay): exp(s A) x = e^{-a s} R(w s) x.
constexpr double kDecay = 0.5, kSpin = 4.0;

void apply_a(double scale, std::span<const float> x, std::span<float> out) {
  for (size_t i = 0; i + 1 < x.size(); i += 2) {
    const double p = x[i], q = x[i + 1];
    out[i] = static_cast<float>(scale * (-kDecay * p - kSpin * q));
    out[i + 1] = static_cast<float>(scale * (kSpin * p - kDecay * q));
  }
}

std::vector<double> exp_a(double s, const std::vector<float>& x0) {
  std::vector<double> r(x0.size());
  const double g = std::exp(-kDecay * s), c = std::cos(kSpin * s), sn = std::sin(kSpin * s);
  for (size_t i = 0; i + 1 < x0.size(); i += 2) {
    r[i] = g * (c * x0[i] - sn * x0[i + 1]);
    r[i + 1] = g * (sn * x0[i] + c * x0[i + 1]);
  }
  return r;
}

// A problem: velocity and closed-form solution at t1 from x0 at t0.
struct Problem {
  const char* name;
  VelocityFn v;
  std::function<std::vector<double>(double t0, double t1, const std::vector<float>& x0)> exact;
};

// dx/dt = A x.
Problem autonomous() {
  return {"x' = A x", [](double, std::span<const float> x, std::span<float> out) { apply_a(1.0, x, out); },
          [](double t0, double t1, const std::vector<float>& x0) { return exp_a(t1 - t0, x0); }};
}

// dx/dt = 2 t A x: x(t1) = exp((t1^2 - t0^2) A) x(t0). Stages at the wrong time break its order.
Problem time_dependent() {
  return {"x' = 2t A x", [](double t, std::span<const float> x, std::span<float> out) { apply_a(2 * t, x, out); },
          [](double t0, double t1, const std::vector<float>& x0) { return exp_a(t1 * t1 - t0 * t0, x0); }};
}

// Stiff-ish scalar rows: dx/dt = -L (x - cos t) with L = 100,
// x(t) = e^{-L (t - t0)} (x0 - p(t0)) + p(t),  p(t) = (L^2 cos t + L sin t) / (L^2 + 1).
Problem stiff() {
  constexpr double L = 100;
  auto p = [](double t) { return (L * L * std::cos(t) + L * std::sin(t)) / (L * L + 1); };
  return {"x' = -100 (x - cos t)",
          [](double t, std::span<const float> x, std::span<float> out) {
            for (size_t i = 0; i < x.size(); ++i) out[i] = static_cast<float>(-L * (x[i] - std::cos(t)));
          },
          [p](double t0, double t1, const std::vector<float>& x0) {
            std::vector<double> r(x0.size());
            for (size_t i = 0; i < x0.size(); ++i) r[i] = std::exp(-L * (t1 - t0)) * (x0[i] - p(t0)) + p(t1);
            return r;
          }};
}

double max_abs_error(const std::vector<float>& x, const std::vector<double>& ref) {
  double e = 0;
  for (size_t i = 0; i < x.size(); ++i) e = std::max(e, std::abs(double(x[i]) - ref[i]));
  return e;
}

// Least-squares slope of log(err) against log(steps).
double loglog_slope(const std::vector<int64_t>& steps, const std::vector<double>& err) {
  const double n = static_cast<double>(steps.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const double lx = std::log(double(steps[i])), ly = std::log(err[i]);
    sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

TEST(Ode, FixedStepErrorSlopeMatchesTheoreticalOrder) {
  const std::vector<float> x0 = {1.0f, 0.5f};
  for (OdeMethod m : kFixed) {
    const double order = m == OdeMethod::Euler ? 1 : m == OdeMethod::Rk4 ? 4 : 2;
    // Step ranges in each method's asymptotic regime, with errors well above the float noise
    // (about 1e-8 here: v sees float inputs and returns float).
    const std::vector<int64_t> steps = m == OdeMethod::Euler ? std::vector<int64_t>{16, 32, 64, 128, 256}
                                       : m == OdeMethod::Rk4 ? std::vector<int64_t>{4, 8, 16, 32, 64}
                                                             : std::vector<int64_t>{8, 16, 32, 64, 128};
    for (const Problem& p : {autonomous(), time_dependent()}) {
      SCOPED_TRACE(std::string(ode_method_name(m)) + " on " + p.name);
      const std::vector<double> ref = p.exact(0, 1, x0);
      std::vector<double> err;
      for (int64_t s : steps) {
        std::vector<float> x = x0;
        OdeOptions opt;
        opt.method = m;
        opt.steps = s;
        const OdeResult r = integrate_ode(p.v, x, opt);
        ASSERT_EQ(r.termination, Termination::Converged) << r.message;
        err.push_back(max_abs_error(x, ref));
        EXPECT_GT(err.back(), 1e-7) << "steps " << s << ": error too close to float noise to measure an order";
      }
      for (size_t i = 1; i < err.size(); ++i) EXPECT_LT(err[i], err[i - 1]);
      EXPECT_NEAR(-loglog_slope(steps, err), order, 0.25);
    }
  }
}

TEST(Ode, FixedStepNfeAndTimeGridAreExact) {
  const double t0 = 0.2, t1 = 0.9;
  for (OdeMethod m : kFixed) {
    for (int64_t steps : {1, 3, 8, 17}) {
      SCOPED_TRACE(std::string(ode_method_name(m)) + " steps " + std::to_string(steps));
      std::vector<double> eval_times, obs_times;
      VelocityFn v = [&](double t, std::span<const float> x, std::span<float> out) {
        eval_times.push_back(t);
        apply_a(1.0, x, out);
      };
      std::vector<float> x = {0.3f, -0.7f, 1.1f, 0.4f};
      OdeOptions opt;
      opt.method = m;
      opt.steps = steps;
      opt.t0 = t0;
      opt.t1 = t1;
      const OdeResult r = integrate_ode(v, x, opt, [&](double t, std::span<const float>) { obs_times.push_back(t); });
      ASSERT_EQ(r.termination, Termination::Converged) << r.message;
      EXPECT_EQ(r.nfe, static_cast<int64_t>(eval_times.size()));
      EXPECT_EQ(r.nfe, steps * ode_nfe_per_step(m));
      EXPECT_EQ(r.accepted, steps);
      EXPECT_EQ(r.rejected, 0);
      EXPECT_EQ(r.t, t1);
      for (double t : eval_times) {
        EXPECT_GE(t, t0);
        EXPECT_LE(t, t1);
      }
      ASSERT_EQ(obs_times.size(), static_cast<size_t>(steps + 1));
      for (int64_t k = 0; k < steps; ++k)  // computed from k, not accumulated
        EXPECT_EQ(obs_times[k], t0 + static_cast<double>(k) * (t1 - t0) / static_cast<double>(steps));
      EXPECT_EQ(obs_times.back(), t1);
      // Each step's first stage is at its start time; Heun's and RK4's last stage lands on its end time.
      const auto per = ode_nfe_per_step(m);
      for (int64_t k = 0; k < steps; ++k) {
        EXPECT_EQ(eval_times[k * per], obs_times[k]);
        if (m == OdeMethod::Heun || m == OdeMethod::Rk4) {
          EXPECT_EQ(eval_times[k * per + per - 1], obs_times[k + 1]);
        }
      }
    }
  }
}

TEST(Ode, Dopri5MeetsToleranceAgainstClosedForms) {
  struct Case {
    Problem p;
    std::vector<float> x0;
    double t0, t1;
  };
  const Points batch = test::gaussian_points(500, 2, 7);  // 500 rows of the rotation-decay problem
  std::vector<Case> cases = {
      {autonomous(), batch.data, 0.0, 1.0},
      {time_dependent(), {1.0f, 0.5f}, 0.0, 1.0},
      {time_dependent(), {-0.4f, 2.0f, 0.9f, 0.1f}, 0.3, 1.7},
      {stiff(), {2.0f, -1.0f, 0.0f, 0.5f}, 0.0, 1.0},
  };
  for (const Case& c : cases) {
    const std::vector<double> ref = c.p.exact(c.t0, c.t1, c.x0);
    int64_t previous_nfe = 0;
    for (double tol : {1e-3, 1e-5, 1e-7}) {
      SCOPED_TRACE(std::string(c.p.name) + " rows " + std::to_string(c.x0.size()) + " tol " + std::to_string(tol));
      int64_t calls = 0;
      bool outside = false;
      VelocityFn v = [&](double t, std::span<const float> x, std::span<float> out) {
        ++calls;
        outside = outside || t < c.t0 || t > c.t1;
        c.p.v(t, x, out);
      };
      std::vector<double> obs_times;
      std::vector<float> x = c.x0;
      OdeOptions opt;
      opt.method = OdeMethod::Dopri5;
      opt.rtol = opt.atol = tol;
      opt.t0 = c.t0;
      opt.t1 = c.t1;
      const OdeResult r = integrate_ode(v, x, opt, [&](double t, std::span<const float>) { obs_times.push_back(t); });
      ASSERT_EQ(r.termination, Termination::Converged) << r.message;
      double worst = 0;  // error in units of the tolerance, per component
      for (size_t i = 0; i < x.size(); ++i)
        worst = std::max(worst, std::abs(double(x[i]) - ref[i]) / (opt.atol + opt.rtol * std::abs(ref[i])));
      EXPECT_LE(worst, 10.0);
      EXPECT_EQ(r.nfe, calls);
      EXPECT_EQ(r.nfe, 2 + 6 * (r.accepted + r.rejected));  // FSAL: 6 per attempt + first velocity + h0 probe
      EXPECT_GT(r.nfe, previous_nfe);
      previous_nfe = r.nfe;
      EXPECT_FALSE(outside);
      ASSERT_EQ(obs_times.size(), static_cast<size_t>(r.accepted + 1));
      EXPECT_EQ(obs_times.front(), c.t0);
      EXPECT_EQ(obs_times.back(), c.t1);
      EXPECT_EQ(r.t, c.t1);
      for (size_t i = 1; i < obs_times.size(); ++i) EXPECT_GT(obs_times[i], obs_times[i - 1]);
    }
  }
}

// The same algorithm elsewhere: SciPy 1.10's solve_ivp(method="RK45") is Dormand-Prince 5(4) with the
// same RMS error norm, initial-step heuristic and controller (0.9, [0.2, 10], no growth after a
// rejection). Its nfev and step counts on these problems (t in [0, 1], rtol = atol) pin ours.
TEST(Ode, Dopri5StepCountsMatchScipyRk45) {
  struct Case {
    Problem p;
    std::vector<float> x0;
    double tol;
    int64_t nfe, accepted;
  };
  const std::vector<Case> cases = {
      {autonomous(), {1.0f, 0.5f}, 1e-3, 32, 5},          {autonomous(), {1.0f, 0.5f}, 1e-5, 62, 10},
      {autonomous(), {1.0f, 0.5f}, 1e-7, 146, 24},        {time_dependent(), {1.0f, 0.5f}, 1e-3, 80, 9},
      {time_dependent(), {1.0f, 0.5f}, 1e-5, 122, 14},    {time_dependent(), {1.0f, 0.5f}, 1e-7, 200, 28},
      {stiff(), {2.0f, -1.0f, 0.0f, 0.5f}, 1e-3, 218, 35}, {stiff(), {2.0f, -1.0f, 0.0f, 0.5f}, 1e-5, 332, 54},
      {stiff(), {2.0f, -1.0f, 0.0f, 0.5f}, 1e-7, 716, 118},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.p.name) + " tol " + std::to_string(c.tol));
    std::vector<float> x = c.x0;
    OdeOptions opt;
    opt.method = OdeMethod::Dopri5;
    opt.rtol = opt.atol = c.tol;
    const OdeResult r = integrate_ode(c.p.v, x, opt);
    ASSERT_EQ(r.termination, Termination::Converged) << r.message;
    EXPECT_EQ(r.nfe, c.nfe);
    EXPECT_EQ(r.accepted, c.accepted);
  }
}

TEST(Ode, NanVelocityEndsWithNumericalFailureKeepingLastAcceptedState) {
  for (OdeMethod m : {OdeMethod::Euler, OdeMethod::Midpoint, OdeMethod::Heun, OdeMethod::Rk4, OdeMethod::Dopri5}) {
    for (double nan_after : {-1.0, 0.5}) {  // NaN from the first call, or once t > 0.5
      SCOPED_TRACE(std::string(ode_method_name(m)) + " nan after t = " + std::to_string(nan_after));
      int64_t calls = 0;
      double first_nan = std::numeric_limits<double>::infinity();
      VelocityFn v = [&](double t, std::span<const float> x, std::span<float> out) {
        ++calls;
        apply_a(1.0, x, out);
        if (t > nan_after) {
          out[1] = std::numeric_limits<float>::quiet_NaN();
          first_nan = std::min(first_nan, t);
        }
      };
      const std::vector<float> x0 = {1.0f, 0.5f, -0.25f, 2.0f};
      std::vector<float> x = x0, last_seen;
      double last_time = -1;
      OdeOptions opt;
      opt.method = m;
      opt.steps = 10;
      const OdeResult r = integrate_ode(v, x, opt, [&](double t, std::span<const float> s) {
        last_time = t;
        last_seen.assign(s.begin(), s.end());
      });
      EXPECT_EQ(r.termination, Termination::NumericalFailure);
      EXPECT_NE(r.message.find("non-finite velocity"), std::string::npos) << r.message;
      EXPECT_EQ(r.nfe, calls);
      EXPECT_LE(calls, 200);  // ended, no hang
      EXPECT_EQ(r.t, last_time);
      EXPECT_LE(r.t, first_nan);  // no accepted step used the NaN
      EXPECT_EQ(x, last_seen);
      for (float e : x) EXPECT_TRUE(std::isfinite(e));
      if (nan_after < 0) {
        EXPECT_EQ(x, x0);
        EXPECT_EQ(r.accepted, 0);
      } else {
        EXPECT_GT(r.accepted, 0);
      }
    }
  }
}

TEST(Ode, UnwrittenVelocityEntriesAreCaught) {
  VelocityFn v = [](double, std::span<const float>, std::span<float> out) { out[0] = 1.0f; };  // forgets out[1]
  std::vector<float> x = {0.0f, 0.0f};
  const OdeResult r = integrate_ode(v, x, OdeOptions{});
  EXPECT_EQ(r.termination, Termination::NumericalFailure);
  EXPECT_EQ(r.nfe, 1);
}

TEST(Ode, StateLeavingTheFloatRangeIsANumericalFailure) {
  // Constant velocity 3e38 on [0, 2]: the state passes FLT_MAX (3.4e38) between t = 1 and t = 1.5.
  VelocityFn v = [](double, std::span<const float>, std::span<float> out) { std::fill(out.begin(), out.end(), 3e38f); };
  for (OdeMethod m : {OdeMethod::Euler, OdeMethod::Rk4, OdeMethod::Dopri5}) {
    SCOPED_TRACE(ode_method_name(m));
    std::vector<float> x = {0.0f, 0.0f};
    OdeOptions opt;
    opt.method = m;
    opt.steps = 4;
    opt.t1 = 2;
    const OdeResult r = integrate_ode(v, x, opt);
    EXPECT_EQ(r.termination, Termination::NumericalFailure);
    EXPECT_FALSE(r.message.empty());
    EXPECT_LT(r.t, 1.2);
    for (float e : x) {
      EXPECT_TRUE(std::isfinite(e));
      EXPECT_NEAR(e, 3e38 * r.t, 1e33);  // the last accepted state, exact for a constant velocity
    }
  }
}

TEST(Ode, Dopri5HonoursMaxNfe) {
  const Problem p = stiff();
  for (int64_t cap : {1, 7, 8, 40, 101}) {
    SCOPED_TRACE("max_nfe " + std::to_string(cap));
    int64_t calls = 0;
    VelocityFn v = [&](double t, std::span<const float> x, std::span<float> out) {
      ++calls;
      p.v(t, x, out);
    };
    const std::vector<float> x0 = {2.0f, -1.0f};
    std::vector<float> x = x0, last_seen = x0;
    OdeOptions opt;
    opt.method = OdeMethod::Dopri5;
    opt.rtol = opt.atol = 1e-7;  // needs hundreds of evaluations
    opt.max_nfe = cap;
    const OdeResult r = integrate_ode(v, x, opt, [&](double, std::span<const float> s) { last_seen.assign(s.begin(), s.end()); });
    EXPECT_EQ(r.termination, Termination::MaxSteps);
    EXPECT_NE(r.message.find("--max-nfe"), std::string::npos) << r.message;
    EXPECT_EQ(r.nfe, calls);
    EXPECT_LE(r.nfe, cap);
    EXPECT_LT(r.t, opt.t1);
    EXPECT_EQ(x, last_seen);
    if (cap < 8) {
      EXPECT_EQ(r.nfe, 0);  // the first attempt needs 8 evaluations
    } else {
      EXPECT_GT(r.nfe + 6, cap);  // stopped only when the next attempt would not fit
    }
  }
}

TEST(Ode, EmptyStateMakesNoCalls) {
  for (OdeMethod m : {OdeMethod::Euler, OdeMethod::Rk4, OdeMethod::Dopri5}) {
    int64_t calls = 0;
    std::vector<float> x;
    OdeOptions opt;
    opt.method = m;
    const OdeResult r = integrate_ode([&](double, std::span<const float>, std::span<float>) { ++calls; }, x, opt,
                                      [&](double, std::span<const float>) { ++calls; });
    EXPECT_EQ(r.termination, Termination::Converged);
    EXPECT_EQ(r.nfe, 0);
    EXPECT_EQ(calls, 0);
  }
}

TEST(Ode, InvalidOptionsAndInputsNameTheArgument) {
  auto bad = [](auto edit, const std::string& fragment) {
    OdeOptions opt;
    edit(opt);
    test::expect_error_contains([&] { opt.validate(); }, fragment);
    std::vector<float> x = {1.0f};
    test::expect_error_contains(
        [&] { integrate_ode([](double, std::span<const float>, std::span<float> o) { o[0] = 0; }, x, opt); }, fragment);
  };
  bad([](OdeOptions& o) { o.steps = 0; }, "invalid --steps = 0");
  bad([](OdeOptions& o) { o.rtol = -1e-3; }, "invalid --rtol = -0.001");
  bad([](OdeOptions& o) { o.rtol = std::numeric_limits<double>::quiet_NaN(); }, "--rtol");
  bad([](OdeOptions& o) { o.atol = 0; }, "invalid --atol = 0");
  bad([](OdeOptions& o) { o.t0 = std::numeric_limits<double>::infinity(); }, "--t0");
  bad([](OdeOptions& o) { o.t1 = 0; }, "invalid --t1 = 0: expected a finite number > --t0 = 0");
  bad([](OdeOptions& o) { o.max_nfe = 0; }, "invalid --max-nfe = 0");
  EXPECT_NO_THROW(OdeOptions{}.validate());

  std::vector<float> x = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  test::expect_error_contains(
      [&] { integrate_ode([](double, std::span<const float>, std::span<float>) {}, x, OdeOptions{}); },
      "invalid x[1] = nan");

  test::expect_error_contains([] { parse_ode_method("rk5", "--method"); },
                              "invalid --method = rk5: expected one of euler, midpoint, heun, rk4, dopri5");
  test::expect_error_contains([] { parse_ode_method("Euler", "sampler"); }, "invalid sampler = Euler");
  for (OdeMethod m : {OdeMethod::Euler, OdeMethod::Midpoint, OdeMethod::Heun, OdeMethod::Rk4, OdeMethod::Dopri5})
    EXPECT_EQ(parse_ode_method(ode_method_name(m), "--method"), m);
  EXPECT_EQ(ode_nfe_per_step(OdeMethod::Euler), 1);
  EXPECT_EQ(ode_nfe_per_step(OdeMethod::Midpoint), 2);
  EXPECT_EQ(ode_nfe_per_step(OdeMethod::Heun), 2);
  EXPECT_EQ(ode_nfe_per_step(OdeMethod::Rk4), 4);
}

// Flow matching towards one data point y: the optimal field is v(t, x) = (y - x) / (1 - t) and the
// exact flow x(t) = (1 - t) x0 + t y is linear in t, so every Runge-Kutta method follows it exactly
// (each stage lies on the trajectory and sees the constant velocity y - x0); only float rounding remains.
TEST(Ode, FlowMatchingSinglePointFieldReachesTheDataPoint) {
  const std::vector<float> y = {0.5f, -1.25f, 2.0f};
  const int64_t d = 3;
  const Points noise = test::gaussian_points(64, d, 11);
  VelocityFn v = [&](double t, std::span<const float> x, std::span<float> out) {
    ASSERT_LT(t, 1.0);
    for (size_t i = 0; i < x.size(); ++i) out[i] = static_cast<float>((y[i % d] - x[i]) / (1 - t));
  };
  struct Run {
    OdeMethod method;
    double t1;
    double tol;
  };
  // Euler's and midpoint's stages stay below t = 1, so they run to t1 = 1 and land on y; heun, rk4 and
  // dopri5 evaluate at t1 itself and stop at 0.999 (the field's 1 / (1 - t) amplifies float rounding).
  for (const Run& run : {Run{OdeMethod::Euler, 1.0, 1e-5}, Run{OdeMethod::Midpoint, 1.0, 1e-5},
                         Run{OdeMethod::Heun, 0.999, 1e-4}, Run{OdeMethod::Rk4, 0.999, 1e-4},
                         Run{OdeMethod::Dopri5, 0.999, 1e-4}}) {
    for (int64_t steps : {1, 2, 7, 50}) {
      SCOPED_TRACE(std::string(ode_method_name(run.method)) + " steps " + std::to_string(steps));
      std::vector<float> x = noise.data;
      OdeOptions opt;
      opt.method = run.method;
      opt.steps = steps;
      opt.t1 = run.t1;
      const OdeResult r = integrate_ode(v, x, opt);
      ASSERT_EQ(r.termination, Termination::Converged) << r.message;
      for (size_t i = 0; i < x.size(); ++i) {
        const double exact = (1 - run.t1) * noise.data[i] + run.t1 * y[i % d];
        ASSERT_NEAR(x[i], exact, run.tol * (1 + std::abs(exact))) << "entry " << i;
        ASSERT_NEAR(x[i], y[i % d], 1e-5 + 2 * (1 - run.t1) * (1 + std::abs(noise.data[i]))) << "entry " << i;
      }
      if (run.method == OdeMethod::Dopri5) break;  // steps do not apply
    }
  }
}

}  // namespace
}  // namespace otgen
