// otgen::Error — the one exception type for user mistakes (bad shapes, NaN in input, bad files,
// invalid options). Its message names the argument, the value and what was expected. The CLI turns it
// into one line on stderr and exit code 2; the Python module into ValueError.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace otgen {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Formats any streamable value for an error message.
template <class T>
std::string to_text(const T& value) {
  std::ostringstream os;
  os << value;
  return os.str();
}

// Throws Error("invalid <argument> = <value>: expected <expected>").
[[noreturn]] void fail_argument(std::string_view argument, std::string_view value, std::string_view expected);

template <class T>
[[noreturn]] void fail_argument(std::string_view argument, const T& value, std::string_view expected) {
  fail_argument(argument, std::string_view(to_text(value)), expected);
}

// require(cond, "batch_size", 0, "a positive integer") throws unless cond holds.
template <class T>
void require(bool condition, std::string_view argument, const T& value, std::string_view expected) {
  if (!condition) fail_argument(argument, value, expected);
}

}  // namespace otgen
