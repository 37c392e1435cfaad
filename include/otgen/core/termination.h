// How an iterative solver stopped: every result struct carries one of these plus a message.
#pragma once

namespace otgen {

enum class Termination {
  Converged,        // the stopping rule of the options was met
  MaxSteps,         // the iteration cap was reached first; the result is the last iterate
  NumericalFailure,  // a NaN/Inf appeared; the result is the last finite iterate
  Interrupted        // stopped on request (Context::should_stop, Ctrl-C); the result so far
};

inline const char* termination_name(Termination t) {
  switch (t) {
    case Termination::Converged: return "converged";
    case Termination::MaxSteps: return "max_steps";
    case Termination::NumericalFailure: return "numerical_failure";
    case Termination::Interrupted: return "interrupted";
  }
  return "unknown";
}

}  // namespace otgen
