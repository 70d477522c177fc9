// System calls a ptrace stop would end with EINTR.
//
// A thread that graft interrupts (PTRACE_INTERRUPT) while it waits in a
// system call is woken as if for a signal. Most calls then report an
// ERESTART* code that the kernel turns into a restart when no handler runs
// (arch_do_signal_or_restart). A few give up with a plain EINTR whenever
// any wake-up left the thread "signal pending", a stop with no signal
// included: epoll_wait, sigtimedwait, semop, io_getevents (signal(7), "after
// a stop signal"). Such an EINTR is graft's alone.
#pragma once
#include "arch/x86_64/registers.h"

namespace graft::arch {

// If the registers of a thread just stopped by an interrupt show one of
// those calls ended with EINTR, makes it report ERESTARTNOHAND instead,
// as poll() does: the kernel restarts the call when the thread resumes
// with no handler to run, and still turns it into EINTR when a handler
// runs. The restarted call waits its whole timeout again (it may return
// late, never early). True if the registers changed.
bool restart_call_ended_by_stop(Registers& r);

}  // namespace graft::arch
