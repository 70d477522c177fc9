// A timer that interrupts a blocking system call of the calling thread only.
//
// The tracer waits for its tracees' stops in blocking waitid() calls and ends
// a wait that takes too long with a SIGALRM (a handler that does nothing,
// without SA_RESTART, so the wait returns EINTR). A process-wide alarm
// (setitimer, alarm) would reach any thread of graft: with several
// processes patched at once, each on a thread of its own, one thread's alarm
// would end another's wait, and its own wait would go on. This timer is the
// thread's own (timer_create with SIGEV_THREAD_ID), created on first use and
// deleted when the thread exits.
#pragma once

namespace graft {

// SIGALRM to the calling thread after `first_us`, then every `every_us`
// until disarmed (a signal that lands before the wait has started is
// followed by another). Unblocks SIGALRM in the calling thread. False if no
// timer could be made: the caller must not block then.
bool arm_thread_alarm(long first_us, long every_us);
void disarm_thread_alarm();

}  // namespace graft
