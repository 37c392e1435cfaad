// Torch-free ODE integration for sampling flow models: dx/dt = v(t, x) from t0 (0 = noise) to t1 (1 = data).
//
// The state is a whole batch flattened (n points of dimension d: n * d floats, row-major); v is called on
// the whole batch at once. The integrator keeps the state and every stage input in double
// (x + h * sum_j a_ij k_j is formed in double and rounded to float only to hand it to v); the stage
// velocities are stored as the float32 values v returned, which loses nothing.
//
// Methods (explicit Runge-Kutta; one Butcher-tableau loop serves them all):
//   euler     x += h v(t, x)                                                      order 1, 1 NFE/step
//   midpoint  x += h v(t + h/2, x + h/2 k1)                                       order 2, 2 NFE/step
//   heun      x += h/2 (k1 + v(t + h, x + h k1))  (trapezoidal RK2)               order 2, 2 NFE/step
//   rk4       the classic 4-stage Runge-Kutta (1/6, 1/3, 1/3, 1/6)                order 4, 4 NFE/step
//   dopri5    Dormand-Prince 5(4) with FSAL and step-size control (Hairer, Norsett & Wanner,
//             Solving ODEs I, II.4-II.5; the DOPRI5 code): the 5th-order solution is propagated, the
//             embedded 4th-order one gives the error estimate.
//
// Fixed-step methods take `steps` uniform steps on [t0, t1]: step k runs from t_k to t_{k+1} with
// t_k = t0 + k (t1 - t0) / steps computed from k (no accumulated drift) and t_steps = t1 exactly;
// stages evaluate v at t_k + c_i (t_{k+1} - t_k), and stages with c_i = 1 at t_{k+1} exactly.
// NFE = steps * ode_nfe_per_step(method), exactly.
//
// Dopri5:
//   error rule (Hairer's norm): a step from x to x_new with error estimate e is accepted when
//     err = sqrt( (1/N) sum_i ( e_i / (atol + rtol * max(|x_i|, |x_new_i|)) )^2 ) <= 1,   N = x.size();
//   controller: h_new = h * min(10, max(0.2, 0.9 * err^(-1/5))) (no growth right after a rejection);
//   initial step: Hairer's heuristic (II.4 / DOPRI5's HINIT), which costs one extra evaluation;
//   the step is clipped so the last one lands exactly on t1 (a step that would end within 1% of a
//   step before t1 is stretched to t1, as in DOPRI5), and v is never evaluated outside [t0, t1].
//   NFE = 2 + 6 * (accepted + rejected) when it runs to t1 (FSAL: a step attempt costs 6 evaluations;
//   the first velocity and the initial-step probe cost 2). A step attempt starts only if its
//   evaluations fit in max_nfe: nfe never exceeds max_nfe; when the cap stops the integration the
//   result is Termination::MaxSteps with the state at the last accepted time (result.t < t1).
//   A step size that no longer advances t (0.1 |h| <= |t| * 2^-52) ends with NumericalFailure.
//
// Failures: a velocity with a NaN/Inf entry, a non-finite error estimate, or a new state that does
// not fit in float ends the integration with Termination::NumericalFailure and a message naming the
// time; x then holds the last finite accepted state (result.t says when). If v throws, the exception
// propagates and x likewise holds the last accepted state.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "otgen/core/termination.h"

namespace otgen {

enum class OdeMethod { Euler, Midpoint, Heun, Rk4, Dopri5 };

// "euler", "midpoint", "heun", "rk4", "dopri5"; anything else throws otgen::Error naming `argument`,
// the value and the valid names.
OdeMethod parse_ode_method(std::string_view name, std::string_view argument = "--method");
const char* ode_method_name(OdeMethod method);  // the inverse of parse_ode_method
// Velocity evaluations per step: 1, 2, 2, 4 for euler, midpoint, heun, rk4; 6 for dopri5 (per step
// attempt after the first, thanks to FSAL; see above for its exact count).
int64_t ode_nfe_per_step(OdeMethod method);

struct OdeOptions {
  OdeMethod method = OdeMethod::Euler;
  int64_t steps = 8;        // fixed-step methods: number of uniform steps on [t0, t1] (> 0)
  double rtol = 1e-5;       // dopri5: relative tolerance of the error rule above (finite, >= 0)
  double atol = 1e-5;       // dopri5: absolute tolerance of the error rule above (finite, > 0)
  double t0 = 0.0;          // start time (finite)
  double t1 = 1.0;          // end time (finite, > t0)
  int64_t max_nfe = 100000; // dopri5: cap on velocity evaluations; MaxSteps when it stops the run (> 0)
  // Throws otgen::Error naming the field by its command-line option: --steps, --rtol, --atol, --t0,
  // --t1, --max-nfe. Every field is checked, whatever the method.
  void validate() const;
};

// Velocity of the whole batch at time t: must write every entry of out (out.size() == x.size()).
// Called exactly once per NFE, always with t in [t0, t1]. The spans are valid only during the call.
// Entries left unwritten read as NaN (out is NaN-filled before each call) and end the run with
// NumericalFailure.
using VelocityFn = std::function<void(double t, std::span<const float> x, std::span<float> out)>;

// Optional observer: called at t0 with the initial state and after every accepted step with the new
// time and state (the last call is at t1 exactly when the run converges).
using OdeObserver = std::function<void(double t, std::span<const float> x)>;

struct OdeResult {
  int64_t nfe = 0;          // velocity evaluations (calls of v)
  int64_t accepted = 0;     // accepted steps (fixed-step methods: the steps taken)
  int64_t rejected = 0;     // dopri5: rejected step attempts (0 for fixed-step methods)
  double t = 0.0;           // time of the returned state: t1 when Converged, earlier otherwise
  Termination termination = Termination::Converged;  // Converged: reached t1
  std::string message;
};

// Integrates dx/dt = v(t, x) from opt.t0 to opt.t1 in place on x. Validates opt; throws otgen::Error
// when x has a non-finite entry. An empty x is valid: returns at once (Converged, nfe 0) without
// calling v or observe.
OdeResult integrate_ode(const VelocityFn& v, std::span<float> x, const OdeOptions& opt,
                        const OdeObserver& observe = {});

}  // namespace otgen
