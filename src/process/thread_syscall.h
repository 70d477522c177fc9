// Whether a thread is blocked in a system call, read from
// /proc/PID/task/TID/syscall without stopping it: "NR ARGS... SP PC" while it
// waits in the kernel, "running" while it runs.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace graft {

struct BlockedSyscall {
  long nr = -1;      // -1: blocked, but not in a system call (a page fault, a stop)
  uint64_t sp = 0, pc = 0;
};

// nullopt if the thread runs, has exited or the file is unreadable.
std::optional<BlockedSyscall> blocked_syscall(pid_t pid, pid_t tid);

}  // namespace graft
