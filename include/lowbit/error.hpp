#pragma once
// lowbit::error is the one exception type the library throws. Messages say what went wrong
// and where (the tensor, row, column or file), so a caller can print e.what() as is.
#include <stdexcept>
#include <string>

namespace lowbit {

class error : public std::runtime_error {
 public:
  explicit error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
[[noreturn]] inline void fail(const std::string& what) { throw error(what); }
}  // namespace detail

}  // namespace lowbit
