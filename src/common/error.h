// Errors carry one line an operator can act on: what failed, and where
// (process, thread, symbol, file, offset), and a code a program can act on
// (`error_code' in --json output).
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace graft {

// What kind of failure: the cause, where graft knows it, not the errno.
enum class ErrorCode {
  failed,                // anything not named below
  usage,                 // bad command line
  bad_input,             // a patch, key, policy or record file that cannot be used
  no_such_process,
  permission_denied,     // graft may not trace or write the process
  process_stopped,       // stopped by job control (SIGSTOP, SIGTSTP)
  zombie,                // exited, not yet reaped
  kernel_thread,
  init_process,          // pid 1
  seccomp,               // a seccomp filter refused a system call graft runs in the process
  write_execute_denied,  // memory-deny-write-execute (PR_SET_MDWE) or a security module
  busy,                  // threads stayed in the code being replaced until the timeout
  locked,                // another graft works on the process
  interrupted,           // SIGINT or SIGTERM
  refused_by_policy,
  not_found,             // no such patch in the process
};

std::string_view error_code_name(ErrorCode code);
// Whether the code already says what state the process is in (a zombie, a
// kernel thread, pid 1, stopped, gone): a message with it needs no other.
bool names_process_state(ErrorCode code);

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ErrorCode code = ErrorCode::failed)
      : std::runtime_error(what), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail(ErrorCode code, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...), code);
}

// The code of any exception: an Error's, else `failed'.
ErrorCode error_code_of(const std::exception& e);

// errno text for messages about a failed system call.
std::string errno_text(int err);

}  // namespace graft
