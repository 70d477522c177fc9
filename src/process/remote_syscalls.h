// Runs system calls inside the target process, on one of its stopped
// threads ("borrowing" it): the thread's registers are saved, pointed at a
// `syscall` instruction already present in the process, run to the end of
// the call, and restored. Nothing is written to the target's code.
//
// Kill-safety: where the process has glibc's gadgets (`syscall; ret` and the
// signal restorer `__restore_rt`), a signal frame holding the thread's true
// state sits on its stack below the red zone, and the call returns into
// rt_sigreturn. If graft dies mid-call, the kernel detaches the thread with
// borrowed registers; it finishes the call and rt_sigreturn puts it back as
// it was. Without the gadgets (a static or non-glibc program, or a thread
// with a shadow stack), the call runs the same way but a death of graft in
// those microseconds leaves the thread with the borrowed registers.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "arch/x86_64/registers.h"
#include "process/maps.h"
#include "process/memory.h"
#include "process/tracer.h"

namespace graft {

class RemoteSyscalls {
 public:
  RemoteSyscalls(Tracer& tracer, const ProcessMemory& memory, const std::vector<Mapping>& maps);
  ~RemoteSyscalls();  // restores the bytes of the stack it used
  RemoteSyscalls(const RemoteSyscalls&) = delete;
  RemoteSyscalls& operator=(const RemoteSyscalls&) = delete;

  // Returns the raw result (-errno on failure).
  long call(long nr, uint64_t a0 = 0, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0,
            uint64_t a4 = 0, uint64_t a5 = 0);
  // Copies a NUL-terminated string to scratch memory below the borrowed
  // thread's stack (past the red zone), for system calls that take one.
  RemoteAddress scratch_string(const std::string& s);
  // The same scratch memory for any bytes (one buffer: each call reuses it).
  RemoteAddress scratch(const Bytes& bytes);

  pid_t thread() const { return tid_; }
  bool kill_safe() const { return frame_at_.value != 0; }

 private:
  pid_t choose_thread();
  void prepare_frame(const std::vector<Mapping>& maps);
  void save_stack(RemoteAddress at, size_t size);

  Tracer& tracer_;
  const ProcessMemory& memory_;
  pid_t tid_;
  arch::Registers resume_;  // the thread's state, with any syscall restart applied
  RemoteAddress syscall_insn_;
  RemoteAddress scratch_;
  RemoteAddress frame_at_;  // 0: no sigreturn frame (not kill-safe)
  std::vector<std::pair<RemoteAddress, Bytes>> saved_stack_;
};

}  // namespace graft
