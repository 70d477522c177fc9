// What /proc/PID/task/TID/status and schedstat say of a thread.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace graft {

// The thread's TracerPid (0 if none or unreadable).
long tracer_pid(pid_t pid, pid_t tid);

// The CPU time the thread has used, in ns (the first field of
// /proc/PID/task/TID/schedstat); nullopt if unreadable.
std::optional<uint64_t> thread_cpu_ns(pid_t pid, pid_t tid);

}  // namespace graft
