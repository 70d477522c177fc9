// Whether a thread is blocked in a system call, read from
// /proc/PID/task/TID/syscall without stopping it: "NR ARGS... SP PC" while it
// waits in the kernel, "running" while it runs.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace graft {

struct BlockedSyscall {
  long nr = -1;      // -1: blocked, but not in a system call (a page fault, a stop)
  uint64_t args[6] = {};
  uint64_t sp = 0, pc = 0;
};

// nullopt if the thread runs, has exited or the file is unreadable.
std::optional<BlockedSyscall> blocked_syscall(pid_t pid, pid_t tid);

// Whether the thread waits in vfork() (or clone/clone3 with CLONE_VFORK,
// as posix_spawn does) for its child to exec or exit. The kernel's wait
// there is killable only: no ptrace stop reaches the thread before the
// child lets it go, and its user state cannot change until then.
bool in_vfork(pid_t pid, const BlockedSyscall& b);

// What to say of such a thread: "thread T is in vfork(): ...".
std::string vfork_holder(pid_t pid, pid_t tid);

// Before graft stops threads: waits up to `timeout_s' until no thread of
// the process is in vfork(); then throws graft::Error naming the thread
// and its child. (A thread that enters vfork() later is met by the
// tracer's own deadline.)
void wait_out_vfork(pid_t pid, double timeout_s);

}  // namespace graft
