// Calls a function inside the target process, on one of its threads.
//
// The thread is stopped, its registers saved, and it is pointed at the
// function with an aligned stack below its own (past the red zone) and a
// return address that is a *trap*: an address graft chose that is mapped
// but not executable, so returning there faults at once and graft sees the
// fault with rip == trap. The thread then runs (the others keep running or
// stay stopped, as the caller left them) until the trap, another fault, or
// the timeout. In every case its registers are restored before this
// returns: the thread continues exactly where it was interrupted. A fault
// inside the function is never delivered to the process.
//
// Kill-safe variant: with a `thunk` (arch::kCallReturnThunk, written by
// graft in its own code), the function returns into the thunk instead, over
// a signal frame holding the thread's whole state (registers, FPU/AVX,
// signal mask): if graft dies while the function runs, the thread finishes
// it and rt_sigreturn puts it back where it was, instead of faulting on the
// trap. The FPU state the function changed is restored too.
#pragma once
#include <string>

#include "process/memory.h"
#include "process/remote_address.h"
#include "process/tracer.h"

namespace graft {

struct RemoteCallResult {
  enum class Status { Returned, Crashed, TimedOut };
  Status status = Status::Returned;
  uint64_t value = 0;   // Returned: rax
  int signal = 0;       // Crashed: the signal, its fault address and pc
  uint64_t fault_address = 0, fault_pc = 0;
  pid_t tid = 0;

  // "returned 5", "crashed with SIGSEGV at pc 0x..., address 0x...", ...
  std::string describe() const;
};

// `trap` must be mapped without execute permission (the first page of a
// graft region, for example). The thread `tid` must be stopped; it is
// stopped again on return.
RemoteCallResult remote_call(Tracer& tracer, const ProcessMemory& memory, pid_t tid,
                             RemoteAddress function, RemoteAddress trap, double timeout_s,
                             const uint64_t (&args)[6] = {}, RemoteAddress thunk = {});

}  // namespace graft
