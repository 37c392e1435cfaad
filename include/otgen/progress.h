// A progress bar for long loops: done/total, rate, ETA and a caller-supplied status (e.g. chi2).
// Drawn on stderr only when stderr is a terminal and the context is not quiet; at most ~10 redraws
// per second, so calling update() every iteration is cheap.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "otgen/context.h"

namespace otgen {

class Progress {
 public:
  Progress(std::string label, int64_t total, const Context& ctx);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(int64_t done, std::string_view status = {});
  void finish(std::string_view status = {});  // draws the final line and a newline (once)
  bool enabled() const { return enabled_; }
  double seconds() const;  // since construction

  // The line that would be drawn (for tests and logs).
  std::string line(int64_t done, std::string_view status) const;

 private:
  std::string label_;
  int64_t total_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace otgen
