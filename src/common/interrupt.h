// SIGINT and SIGTERM during an operation on a process: the operation must
// roll back (or finish) and say so, never die halfway. watch_interrupts()
// blocks both signals in every thread and lets one thread wait for them;
// the operations poll interrupt_signal() where they can stop safely (between
// the stop model's tries, in a per-thread transition's loop, before the
// region is created).
#pragma once
#include <string>

namespace graft {

// Before any other thread starts (the CLI calls it for operations on
// processes; the daemon too). Later calls do nothing.
void watch_interrupts();

// The signal that asked graft to stop (SIGINT or SIGTERM), 0 if none.
int interrupt_signal();

// Readable (an eventfd) once a signal asked graft to stop, for a loop that
// waits in poll(); -1 before watch_interrupts().
int interrupt_wake_fd();

// Throws Error(ErrorCode::interrupted) if a signal asked graft to stop:
// "interrupted by SIGINT <when>".
void throw_if_interrupted(const std::string& when);

// "SIGINT", "SIGTERM".
std::string signal_name(int sig);

}  // namespace graft
