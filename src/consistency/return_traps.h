// Whether graft may point a thread's return address at a stub of its own
// (the per-thread models' exit stubs, the stop model's return trap).
//
// Unwinders (C++ exceptions, thread cancellation, backtrace()) meet the
// stub as the return address of the frame below it. libgcc's unwinder
// finds the stubs' unwind information once graft has registered it
// (arch/x86_64/stub_unwind_info.h, loader/unwind_registration.h), and
// passes the stub to the real caller; LLVM's libunwind ignores
// __register_frame_info, and an unwinder without an FDE for the stub ends
// the process (std::terminate) or the walk. So: allowed in a process with
// no unwinder, or whose unwinder is libgcc and the registration took;
// refused, with the reason, otherwise, and for a thread with a shadow
// stack (it would refuse the return).
//
// A thread that unwinds past its stub never runs it: the slot is then
// below its stack pointer (put_back_return_address leaves it), and the
// thread is moved by the stack checks like any other.
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

// GRAFT_STUB_UNWIND_INFO=0: the stubs' unwind information is not
// registered, and the stubs serve anyway (for the tests that show what an
// unwinder does without it; never in production).
bool stub_unwind_info_disabled();

// Puts back the return address `original` of a stopped thread (registers
// `regs`) whose slot graft pointed at `stub`, unless the thread has
// returned through it: the word holds something else, or lies below the
// live stack (a longjmp or an exception past the frame). The caller first
// handles a thread inside the stub. True if written.
bool put_back_return_address(const ProcessMemory& memory, const arch::Registers& regs, uint64_t stub,
                             uint64_t slot, uint64_t original);

// The unwinder a process unwinds its stacks with.
enum class Unwinder { None, Libgcc, Llvm };
struct UnwinderUse {
  Unwinder kind = Unwinder::None;
  std::string where;  // the library mapped, or the executable's own
};

class ReturnTrapPolicy {
 public:
  // `unregistered`: why the stubs have no unwind information registered
  // with the process's libgcc, "" if they have.
  ReturnTrapPolicy(pid_t pid, std::string unregistered) : pid_(pid), unregistered_(std::move(unregistered)) {}
  // Why the return of thread `tid` cannot lead to a stub, "" if it can.
  std::string refusal(pid_t tid) const;
  // From the libraries the process maps (read again each time: a library
  // may be loaded meanwhile) and, without them, the executable's symbols.
  // When it cannot tell, it answers LLVM (the one it refuses).
  UnwinderUse unwinder() const;

 private:
  pid_t pid_;
  std::string unregistered_;
  mutable std::optional<UnwinderUse> static_;  // the executable's own
};

}  // namespace graft
