// Whether graft may point a thread's return address at a stub of its own
// (the per-thread models' exit stubs, the stop model's return trap).
// Unwinders (C++ exceptions, thread cancellation, backtrace()) would meet
// the stub, which has no unwind information, and a shadow stack would
// refuse the return.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "arch/x86_64/registers.h"
#include "process/memory.h"

namespace graft {

// GRAFT_RETURN_STUBS=0 in graft's environment: no return is pointed at a
// stub (for comparisons with the checks alone).
bool return_stubs_disabled();

// Puts back the return address `original` of a stopped thread (registers
// `regs`) whose slot graft pointed at `stub`, unless the thread has
// returned through it: the word holds something else, or lies below the
// live stack (a longjmp past the frame). The caller first handles a thread
// inside the stub. True if written.
bool put_back_return_address(const ProcessMemory& memory, const arch::Registers& regs, uint64_t stub,
                             uint64_t slot, uint64_t original);

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
