// Whether graft may point a thread's return address at a stub of its own
// (the per-thread models' exit stubs, the stop model's return trap).
// Unwinders (C++ exceptions, thread cancellation, backtrace()) would meet
// the stub, which has no unwind information, and a shadow stack would
// refuse the return.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>

namespace graft {

class ReturnTrapPolicy {
 public:
  explicit ReturnTrapPolicy(pid_t pid) : pid_(pid) {}
  // Why the return of thread `tid` cannot lead to a stub, "" if it can.
  std::string refusal(pid_t tid) const;

 private:
  pid_t pid_;
  mutable std::optional<bool> static_unwinder_;  // the executable defines _Unwind_RaiseException
};

}  // namespace graft
