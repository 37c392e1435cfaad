#include "otgen/core/memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

namespace otgen {

uint64_t available_memory() {
  uint64_t avail = 0;
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    unsigned long long kb = 0;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
        avail = static_cast<uint64_t>(kb) * 1024;
        break;
      }
    std::fclose(f);
  }
  if (avail == 0) {
    const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) avail = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  }
  for (const int resource : {RLIMIT_AS, RLIMIT_DATA}) {
    struct rlimit rl;
    if (::getrlimit(resource, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      avail = std::min<uint64_t>(avail, static_cast<uint64_t>(rl.rlim_cur));
  }
  return avail;
}

std::string bytes_text(double bytes) {
  if (bytes < 1e4) return std::to_string(static_cast<long long>(bytes)) + " bytes";
  const char* units[] = {"kB", "MB", "GB", "TB", "PB", "EB"};
  int u = 0;
  double v = bytes / 1e3;
  while (v >= 1e3 && u < 5) v /= 1e3, ++u;
  char buf[64];
  std::snprintf(buf, sizeof buf, v < 1e4 ? "%.1f %s" : "%.3g %s", v, units[u]);
  return buf;
}

void require_memory(std::string_view argument, std::string_view value, double bytes, std::string_view what) {
  const uint64_t avail = available_memory();
  if (bytes <= static_cast<double>(avail)) return;
  char need[64];
  std::snprintf(need, sizeof need, "%.0f", bytes);
  fail_argument(argument, value,
                std::string("a size that fits in memory (") + std::string(what) + " need " + need + " bytes = " +
                    bytes_text(bytes) + ", " + bytes_text(static_cast<double>(avail)) + " are available)");
}

}  // namespace otgen
