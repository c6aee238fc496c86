#pragma once
// lowbit::error is the one exception type the library throws. Messages say what went wrong
// and where (the tensor, row, column or file), so a caller can print e.what() as is.
#include <cstdio>
#include <stdexcept>
#include <string>

namespace lowbit {

class error : public std::runtime_error {
 public:
  explicit error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
[[noreturn]] inline void fail(const std::string& what) { throw error(what); }

// A float value in a message as people write it: 0.5, 1.5e-07, nan, inf (std::to_string
// prints "0.000000" for 0 and for 1e-7 alike). %.9g round-trips every float.
inline std::string show_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
}  // namespace detail

}  // namespace lowbit
