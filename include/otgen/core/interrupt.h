// Ctrl-C and SIGTERM in the command-line tool.
//
// install_interrupt_handlers() (the CLI calls it once, first): a signal removes the temporary files of
// unfinished outputs (otgen/core/staging.h), prints "otgen: interrupted" and ends the process with exit code
// 128 + signal (130 for Ctrl-C); no partial file and no old output is damaged. Inside an InterruptScope
// (a long loop that can stop cleanly: the fit, training) the first signal only sets a flag, which the
// loop polls through interrupt_requested() after each step to save what it has; a second signal ends
// the process at once as above.
//
// The library never installs handlers itself: Python keeps its own (the module polls
// PyErr_CheckSignals through Context::should_stop).
#pragma once

namespace otgen {

// announce = false: no "otgen: interrupted" line (a rank of an MPI job, which mpirun ends with SIGTERM
// once another rank failed: that rank's message is the one to read).
void install_interrupt_handlers(bool announce = true);
// True once SIGINT or SIGTERM arrived inside an InterruptScope.
bool interrupt_requested();
// The signal that arrived (SIGINT, SIGTERM), 0 if none.
int interrupt_signal();

class InterruptScope {
 public:
  InterruptScope();   // signals set the flag from now on
  ~InterruptScope();  // back to ending the process
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

}  // namespace otgen
