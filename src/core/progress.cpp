#include "otgen/core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "otgen/core/communicator.h"

namespace otgen {

namespace {
std::string format_seconds(double s) {
  char buf[32];
  if (s < 0 || s != s) return "?";
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

ProgressMode stderr_mode(const Context& ctx) {
  if (ctx.quiet || ctx.communicator().rank() != 0) return ProgressMode::Off;  // progress from rank 0 only
  const char* env = std::getenv("OTGEN_PROGRESS");
  const std::string m = env ? env : "";
  if (m == "off") return ProgressMode::Off;
  if (m == "bar") return ProgressMode::Bar;
  if (m == "log") return ProgressMode::Log;
  if (m == "json") return ProgressMode::Json;
  return ::isatty(STDERR_FILENO) ? ProgressMode::Bar : ProgressMode::Log;
}

double since(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

constexpr double kRedraw = 0.1;  // seconds between bar redraws, JSON lines and callbacks
}  // namespace

double Progress::log_interval() {
  const char* env = std::getenv("OTGEN_PROGRESS_INTERVAL");
  if (!env || !*env) return 5.0;
  char* end = nullptr;
  const double v = std::strtod(env, &end);
  return (end && *end == '\0' && v >= 0 && v < 1e9) ? v : 5.0;
}

Progress::Progress(std::string label, int64_t total, const Context& ctx)
    : label_(std::move(label)), total_(total), mode_(stderr_mode(ctx)), interval_(log_interval()),
      callback_(ctx.on_progress), start_(std::chrono::steady_clock::now()), last_draw_(start_),
      last_call_(start_) {}

Progress::~Progress() {
  if (mode_ == ProgressMode::Bar && !finished_) std::fputc('\n', stderr);
}

double Progress::seconds() const { return since(start_, std::chrono::steady_clock::now()); }

void Progress::set_metric(std::string_view name, double value) {
  for (auto& m : metrics_)
    if (m.first == name) {
      m.second = value;
      return;
    }
  metrics_.emplace_back(std::string(name), value);
}

ProgressEvent Progress::event(int64_t done, bool final) const {
  ProgressEvent e;
  e.label = label_;
  e.done = done;
  e.total = total_;
  e.seconds = seconds();
  e.rate = e.seconds > 0 ? static_cast<double>(done) / e.seconds : 0.0;
  e.eta = total_ > 0 && e.rate > 0 ? static_cast<double>(std::max<int64_t>(total_ - done, 0)) / e.rate : -1.0;
  e.metrics = metrics_;
  e.final = final;
  return e;
}

std::string Progress::line(int64_t done, std::string_view status) const {
  const ProgressEvent e = event(done, false);
  std::string out = label_ + " ";
  char buf[160];
  if (total_ > 0) {
    const int width = 24;
    const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    const int filled = static_cast<int>(frac * width);
    out.push_back('[');
    out.append(filled, '#').append(width - filled, '.').append("] ");
    std::snprintf(buf, sizeof buf, "%lld/%lld %5.1f%% %.1f/s eta %s", static_cast<long long>(done),
                  static_cast<long long>(total_), 100.0 * frac, e.rate, format_seconds(e.eta).c_str());
  } else {
    std::snprintf(buf, sizeof buf, "%lld %.1f/s", static_cast<long long>(done), e.rate);
  }
  out += buf;
  out += " elapsed " + format_seconds(e.seconds);
  for (const auto& [name, value] : metrics_) {
    std::snprintf(buf, sizeof buf, "  %s %.4g", name.c_str(), value);
    out += buf;
  }
  if (!status.empty()) out.append("  ").append(status);
  return out;
}

std::string Progress::log_line(int64_t done, std::string_view status) const {
  const ProgressEvent e = event(done, false);
  char buf[160];
  std::string out = label_ + ": step " + std::to_string(done);
  if (total_ > 0) {
    std::snprintf(buf, sizeof buf, "/%lld (%.1f%%)", static_cast<long long>(total_),
                  100.0 * static_cast<double>(done) / static_cast<double>(total_));
    out += buf;
  }
  for (const auto& [name, value] : metrics_) {
    std::snprintf(buf, sizeof buf, ", %s %.4g", name.c_str(), value);
    out += buf;
  }
  std::snprintf(buf, sizeof buf, ", %.3g steps/s", e.rate);
  out += buf;
  if (total_ > 0) out += ", eta " + format_seconds(e.eta);
  out += ", elapsed " + format_seconds(e.seconds);
  if (!status.empty()) out.append(", ").append(status);
  return out;
}

std::string Progress::json_line(int64_t done, bool final) const {
  const ProgressEvent e = event(done, final);
  nlohmann::ordered_json metrics = nlohmann::ordered_json::object();
  for (const auto& [name, value] : metrics_) metrics[name] = value;
  const nlohmann::ordered_json j{{"progress", label_}, {"step", done},        {"total", total_},
                         {"seconds", e.seconds}, {"rate", e.rate},    {"eta", e.eta},
                         {"metrics", metrics},   {"final", final}};
  return j.dump();
}

void Progress::emit(int64_t done, std::string_view status, bool final) {
  const auto now = std::chrono::steady_clock::now();
  const double redraw = std::min(kRedraw, interval_);
  if (callback_ && (final || since(last_call_, now) >= redraw)) {
    last_call_ = now;
    callback_(event(done, final));
  }
  switch (mode_) {
    case ProgressMode::Off: break;
    case ProgressMode::Bar:
      if (!final && logged_ && since(last_draw_, now) < kRedraw && done < total_) break;
      last_draw_ = now;
      logged_ = true;
      std::fprintf(stderr, "\r\033[K%s%s", line(done, status).c_str(), final ? "\n" : "");
      break;
    case ProgressMode::Log:
      // The last line only when a periodic one was due (quick runs print nothing).
      if (since(last_draw_, now) < interval_ && !(final && logged_)) break;
      last_draw_ = now;
      logged_ = true;
      std::fprintf(stderr, "%s\n", log_line(done, status).c_str());
      break;
    case ProgressMode::Json:
      if (since(last_draw_, now) < redraw && !(final && logged_)) break;
      last_draw_ = now;
      logged_ = true;
      std::fprintf(stderr, "%s\n", json_line(done, final).c_str());
      break;
  }
  if (mode_ != ProgressMode::Off) std::fflush(stderr);
  last_done_ = done;
}

void Progress::update(int64_t done, std::string_view status) {
  if (finished_ || !enabled()) return;
  emit(done, status, false);
}

void Progress::finish(std::string_view status) {
  if (finished_) return;
  if (enabled()) emit(last_done_, status, true);
  finished_ = true;
}

}  // namespace otgen
