// Memory limits checked before allocating: a requested size (--n, --batch, --particles, --dim, ...)
// whose arrays cannot fit in the memory available now is refused with otgen::Error naming the
// argument and the bytes needed, instead of failing later with std::bad_alloc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "otgen/core/error.h"

namespace otgen {

// Bytes this process can allocate now: MemAvailable of /proc/meminfo (else free pages by sysconf),
// capped by RLIMIT_AS and RLIMIT_DATA.
uint64_t available_memory();

// "12.0 GB" style text of a byte count (decimal units; "1234 bytes" below 10 kB).
std::string bytes_text(double bytes);

// Throws Error("invalid <argument> = <value>: expected a size that fits in memory (<what> need <bytes>
// bytes (<text>), <available> are available)") when bytes > available_memory(). `bytes` is a double so
// that products of large sizes cannot overflow; `what` says what the bytes are for.
void require_memory(std::string_view argument, std::string_view value, double bytes, std::string_view what);

// Bytes of `rows` float32 rows of dimension d plus `per_row` bytes of per-row results (in double: no
// overflow). A batch of semidiscrete noise with its results is rows_bytes(B, d, 32).
inline double rows_bytes(int64_t rows, int64_t d, double per_row = 0) {
  return static_cast<double>(rows) * (4.0 * static_cast<double>(d) + per_row);
}

template <class T>
void require_memory(std::string_view argument, const T& value, double bytes, std::string_view what) {
  require_memory(argument, std::string_view(to_text(value)), bytes, what);
}

}  // namespace otgen
