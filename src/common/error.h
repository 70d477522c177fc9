// Errors carry one line an operator can act on: what failed, and where
// (process, thread, symbol, file, offset).
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace graft {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// errno text for messages about a failed system call.
std::string errno_text(int err);

}  // namespace graft
