// What /proc/PID/task/TID/status says of a thread.
#pragma once
#include <sys/types.h>

namespace graft {

// The thread's TracerPid (0 if none or unreadable).
long tracer_pid(pid_t pid, pid_t tid);

}  // namespace graft
