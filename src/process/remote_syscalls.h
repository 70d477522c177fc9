// Runs system calls inside the target process, on one of its stopped
// threads: the thread's registers are saved, pointed at a `syscall`
// instruction already present in the process, single-stepped, and restored.
// Nothing is written to the target's code.
#pragma once
#include <string>
#include <vector>

#include "process/maps.h"
#include "process/memory.h"
#include "process/tracer.h"

namespace graft {

class RemoteSyscalls {
 public:
  RemoteSyscalls(Tracer& tracer, const ProcessMemory& memory, const std::vector<Mapping>& maps);
  ~RemoteSyscalls();  // restores the scratch bytes of the stack
  RemoteSyscalls(const RemoteSyscalls&) = delete;
  RemoteSyscalls& operator=(const RemoteSyscalls&) = delete;

  // Returns the raw result (-errno on failure).
  long call(long nr, uint64_t a0 = 0, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0,
            uint64_t a4 = 0, uint64_t a5 = 0);
  // Copies a NUL-terminated string to scratch memory below the stopped
  // thread's stack (past the red zone), for system calls that take one.
  RemoteAddress scratch_string(const std::string& s);

 private:
  Tracer& tracer_;
  const ProcessMemory& memory_;
  pid_t tid_;
  RemoteAddress syscall_insn_;
  RemoteAddress scratch_;
  Bytes saved_scratch_;
};

}  // namespace graft
