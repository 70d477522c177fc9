// Runs the work on one traced process on a thread of its own, so that the
// end of the work detaches every traced thread at once.
//
// ptrace attaches to the *thread* that calls it, and when that thread exits
// the kernel detaches all its tracees itself (exit_ptrace), without stopping
// any: each one stopped is resumed, each running one just stops being
// traced. PTRACE_DETACH instead needs the thread stopped, and a running
// thread stops only at its next turn on a CPU: detaching one at a time, with
// more busy threads than cores, those turns add up to seconds (15 s of a
// 17 s apply at 128 busy threads on two cores), and each thread is stopped
// once more after the work is done.
#pragma once
#include <functional>

namespace graft {

// Runs `job` on a new thread and waits for it; exceptions pass through. The
// new thread has the caller's scheduling policy (real-time priority does
// not pass to new threads by itself, see realtime_priority.h) and stays on
// the CPU the caller was on (see the .cc). Several may run at once, one per
// process (loader/process_batch.h): the tracer's waits and timers concern
// the calling thread's tracees only (process/tracer.cc, thread_alarm.h).
void run_tracing_thread(const std::function<void()>& job);

// Whether this thread is one run_tracing_thread() started and no Tracer on it
// has yet left its threads to the thread's exit.
bool exit_detaches_here();
// Called by the Tracer that leaves its threads to the thread's exit.
void mark_exit_detach_used();

}  // namespace graft
