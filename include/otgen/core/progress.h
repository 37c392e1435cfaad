// Progress of long loops (fits, training, samplers, bootstraps) on stderr and to a callback.
//
// On stderr, unless the context is quiet, in one of these modes (OTGEN_PROGRESS picks one; default:
// "bar" when stderr is a terminal, else "log"):
//   bar   a bar redrawn in place (at most ~10 times a second): label [####....] done/total pct rate eta
//   log   one line every OTGEN_PROGRESS_INTERVAL seconds (default 5) and a last one at the end (when the
//         run lasted that long): "<label>: step <done>/<total> (<pct>%), <metric> <value>, ...,
//         <rate> steps/s, eta <m:ss>, elapsed <m:ss>[, <status>]"
//   json  one JSON object a line at most every 0.1 s (and at the end if one was due), for wrappers such as the Python
//         module: {"progress": label, "step", "total", "seconds", "rate", "eta", "metrics": {...},
//         "final": bool}
//   off   nothing.
// Independently of quiet, Context::on_progress (if set) receives the same events (at most every
// 0.1 s, or every OTGEN_PROGRESS_INTERVAL seconds if that is shorter, and always at the end).
// Calling update() every iteration is cheap.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "otgen/core/context.h"

namespace otgen {

using ProgressMetric = std::pair<std::string, double>;

// What a progress callback receives (views valid during the call only).
struct ProgressEvent {
  std::string_view label;
  int64_t done = 0;
  int64_t total = 0;  // 0: unknown
  double seconds = 0;
  double rate = 0;    // steps per second
  double eta = -1;    // seconds left; < 0: unknown
  std::span<const ProgressMetric> metrics;  // e.g. {"chi2", 0.01} or {"loss", 0.3}
  bool final = false;
};

enum class ProgressMode { Off, Bar, Log, Json };

class Progress {
 public:
  Progress(std::string label, int64_t total, const Context& ctx);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // A named value shown with every later line and event (e.g. "chi2", "loss"); the same name replaces it.
  void set_metric(std::string_view name, double value);
  void update(int64_t done, std::string_view status = {});
  void finish(std::string_view status = {});  // the last line / event (once)
  // Whether anything is shown or called back (callers may skip building a status string otherwise).
  bool enabled() const { return mode_ != ProgressMode::Off || callback_; }
  ProgressMode mode() const { return mode_; }
  double seconds() const;  // since construction

  // The lines of each mode (for tests and logs).
  std::string line(int64_t done, std::string_view status) const;      // bar
  std::string log_line(int64_t done, std::string_view status) const;  // log
  std::string json_line(int64_t done, bool final) const;              // json

  // OTGEN_PROGRESS_INTERVAL in seconds (>= 0), default 5; an unreadable value is the default.
  static double log_interval();

 private:
  std::string label_;
  int64_t total_;
  ProgressMode mode_;
  bool finished_ = false;
  bool logged_ = false;
  int64_t last_done_ = 0;
  double interval_;
  ProgressCallback callback_;
  std::vector<ProgressMetric> metrics_;
  std::chrono::steady_clock::time_point start_, last_draw_, last_call_;
  ProgressEvent event(int64_t done, bool final) const;
  void emit(int64_t done, std::string_view status, bool final);
};

}  // namespace otgen
