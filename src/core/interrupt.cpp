#include "otgen/core/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <csignal>

#include "otgen/core/staging.h"

namespace otgen {
namespace {

std::atomic<int> g_scopes{0};
bool g_announce = true;
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int sig) {
  if (g_scopes.load() > 0 && g_signal == 0) {
    g_signal = sig;
    return;
  }
  remove_temporaries_signal_safe();
  static const char msg[] = "otgen: interrupted\n";
  if (g_announce) {
    [[maybe_unused]] const ssize_t w = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  }
  ::_exit(128 + sig);
}

}  // namespace

void install_interrupt_handlers(bool announce) {
  g_announce = announce;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

bool interrupt_requested() { return g_signal != 0; }
int interrupt_signal() { return g_signal; }

InterruptScope::InterruptScope() { ++g_scopes; }
InterruptScope::~InterruptScope() { --g_scopes; }

}  // namespace otgen
