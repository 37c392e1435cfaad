#include "otgen/progress.h"

#include <unistd.h>

#include <cstdio>
#include <string>

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
}  // namespace

Progress::Progress(std::string label, int64_t total, const Context& ctx)
    : label_(std::move(label)), total_(total), enabled_(!ctx.quiet && ::isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()), last_draw_(start_ - std::chrono::seconds(1)) {}

Progress::~Progress() {
  if (enabled_ && !finished_) std::fputc('\n', stderr);
}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::line(int64_t done, std::string_view status) const {
  const double elapsed = seconds();
  const double rate = elapsed > 0 ? done / elapsed : 0.0;
  std::string out = label_ + " ";
  char buf[160];
  if (total_ > 0) {
    const int width = 24;
    const double frac = std::min(1.0, static_cast<double>(done) / total_);
    const int filled = static_cast<int>(frac * width);
    out.push_back('[');
    out.append(filled, '#').append(width - filled, '.').append("] ");
    std::snprintf(buf, sizeof buf, "%lld/%lld %5.1f%% %.1f/s eta %s", static_cast<long long>(done),
                  static_cast<long long>(total_), 100.0 * frac, rate,
                  format_seconds(rate > 0 ? (total_ - done) / rate : -1).c_str());
  } else {
    std::snprintf(buf, sizeof buf, "%lld %.1f/s", static_cast<long long>(done), rate);
  }
  out += buf;
  out += " elapsed " + format_seconds(elapsed);
  if (!status.empty()) {
    out += "  ";
    out += status;
  }
  return out;
}

void Progress::update(int64_t done, std::string_view status) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  std::fprintf(stderr, "\r\033[K%s", line(done, status).c_str());
  std::fflush(stderr);
}

void Progress::finish(std::string_view status) {
  if (finished_) return;
  if (enabled_) std::fprintf(stderr, "\r\033[K%s\n", line(total_ > 0 ? total_ : 0, status).c_str());
  finished_ = true;
}

}  // namespace otgen
