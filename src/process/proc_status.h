// What /proc/PID/task/TID/status and schedstat say of a thread.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace graft {

// The thread's TracerPid (0 if none or unreadable).
long tracer_pid(pid_t pid, pid_t tid);

// The CPU time the thread has used, in ns (the first field of
// /proc/PID/task/TID/schedstat); nullopt if unreadable.
std::optional<uint64_t> thread_cpu_ns(pid_t pid, pid_t tid);

}  // namespace graft

namespace graft {

// What /proc/PID/status and /proc/PID/stat say of a process.
struct ProcessStatus {
  std::string name;      // Name: (comm)
  char state = '?';      // R, S, D, T (job-control stop), t (traced), Z, X...
  uid_t uid = 0, euid = 0;
  int seccomp = 0;       // 0 none, 1 strict, 2 filter
  bool kernel_thread = false;
  bool exiting = false;  // the main thread is in exit (PF_EXITING)
};
// nullopt if the process does not exist (or its status cannot be read).
std::optional<ProcessStatus> read_process_status(pid_t pid);

// Whether the process is gone or on its way out: gone, a zombie, or its
// main thread already in exit, which /proc may show running or traced
// while its memory and files are already gone.
bool process_exiting(pid_t pid);

// Throws graft::Error with the real cause (no such process, pid 1, a
// kernel thread, a zombie, a job-control stop, another user's process as
// non-root) if graft cannot or must not change the process. Reads /proc
// only: the process is not touched.
void check_process_changeable(pid_t pid);

// The message and code of a system call that failed with `err' when graft
// ran it in the process: a seccomp filter or memory-deny-write-execute
// named when they are the likely cause. `adds_exec': the call makes memory
// executable (mmap/mprotect with PROT_EXEC).
[[noreturn]] void fail_remote_syscall(pid_t pid, const char* what, int err, bool adds_exec);

}  // namespace graft
