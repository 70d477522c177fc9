#include "common/error.h"

#include <cstring>

namespace graft {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::failed: return "failed";
    case ErrorCode::usage: return "usage";
    case ErrorCode::bad_input: return "bad_input";
    case ErrorCode::no_such_process: return "no_such_process";
    case ErrorCode::permission_denied: return "permission_denied";
    case ErrorCode::process_stopped: return "process_stopped";
    case ErrorCode::zombie: return "zombie";
    case ErrorCode::kernel_thread: return "kernel_thread";
    case ErrorCode::init_process: return "init_process";
    case ErrorCode::seccomp: return "seccomp";
    case ErrorCode::write_execute_denied: return "write_execute_denied";
    case ErrorCode::busy: return "busy";
    case ErrorCode::locked: return "locked";
    case ErrorCode::interrupted: return "interrupted";
    case ErrorCode::refused_by_policy: return "refused_by_policy";
    case ErrorCode::not_found: return "not_found";
  }
  return "failed";
}

ErrorCode error_code_of(const std::exception& e) {
  if (auto* error = dynamic_cast<const Error*>(&e)) return error->code();
  return ErrorCode::failed;
}

std::string errno_text(int err) { return std::strerror(err); }

bool names_process_state(ErrorCode code) {
  switch (code) {
    case ErrorCode::no_such_process:
    case ErrorCode::process_stopped:
    case ErrorCode::zombie:
    case ErrorCode::kernel_thread:
    case ErrorCode::init_process:
      return true;
    default:
      return false;
  }
}

}  // namespace graft
