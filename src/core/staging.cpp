#include "otgen/core/staging.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include "otgen/core/error.h"

namespace otgen {
namespace {

// The registry of temporary files lives in fixed storage so that a signal handler can walk it: a slot
// is free (0), being filled (1) or listed (2). A path too long for a slot, or a 257th file, is simply
// not listed (it is still removed on every failure that is not a signal).
constexpr int kSlots = 256;
constexpr size_t kPathMax = 4096;
char g_paths[kSlots][kPathMax];
std::atomic<int> g_state[kSlots];

struct Staged {
  std::string tmp, path;
};
std::mutex g_mutex;
bool g_batch_open = false;
bool g_pass_through = false;
std::vector<Staged> g_staged;

void rename_now(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    discard_temporary(tmp);
    throw Error("cannot write '" + path + "': " + std::strerror(e));
  }
  forget_temporary(tmp);
}

}  // namespace

std::string temporary_path(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

void register_temporary(const std::string& tmp) {
  if (tmp.size() >= kPathMax) return;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (g_state[i].compare_exchange_strong(expected, 1)) {
      std::memcpy(g_paths[i], tmp.c_str(), tmp.size() + 1);
      g_state[i].store(2);
      return;
    }
  }
}

void forget_temporary(const std::string& tmp) {
  for (int i = 0; i < kSlots; ++i)
    if (g_state[i].load() == 2 && tmp == g_paths[i]) {
      g_state[i].store(0);
      return;
    }
}

void discard_temporary(const std::string& tmp) noexcept {
  std::remove(tmp.c_str());
  forget_temporary(tmp);
}

void publish(const std::string& tmp, const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_batch_open && !g_pass_through) {
      for (const Staged& s : g_staged)
        if (s.tmp == tmp) return;  // the same file written again: its one rename is already staged
      g_staged.push_back({tmp, path});
      return;
    }
  }
  rename_now(tmp, path);
}

OutputBatch::OutputBatch() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_batch_open) throw Error("internal: an output batch is already open");
  g_batch_open = true;
  g_pass_through = false;
  g_staged.clear();
}

OutputBatch::~OutputBatch() {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (const Staged& s : g_staged) discard_temporary(s.tmp);
  g_staged.clear();
  g_batch_open = false;
}

void OutputBatch::commit() {
  std::vector<Staged> staged;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    staged.swap(g_staged);
    g_pass_through = true;  // anything written after the commit goes straight to its place
  }
  for (size_t k = 0; k < staged.size(); ++k) {
    try {
      rename_now(staged[k].tmp, staged[k].path);
    } catch (...) {
      for (size_t r = k + 1; r < staged.size(); ++r) discard_temporary(staged[r].tmp);
      throw;
    }
  }
}

void publish_as_written() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_pass_through = true;
}

int remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  int removed = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid == ::getpid() || pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code rm;
    if (fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

void remove_temporaries_signal_safe() noexcept {
  for (int i = 0; i < kSlots; ++i)
    if (g_state[i].load() == 2) ::unlink(g_paths[i]);
}

}  // namespace otgen
