#include "otgen/core/error.h"

namespace otgen {

void fail_argument(std::string_view argument, std::string_view value, std::string_view expected) {
  std::string msg = "invalid ";
  msg += argument;
  msg += " = ";
  msg += value;
  msg += ": expected ";
  msg += expected;
  throw Error(msg);
}

}  // namespace otgen
