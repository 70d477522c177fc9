// One operation on many processes (`apply --all`, `revert --all`), run on a
// bounded pool of threads, one process per thread at a time.
//
// Each process is handled whole (attach, patch, detach) by the thread that
// takes it: ptrace binds a tracee to the thread that attached it, and the
// operations run their tracer on a thread of their own anyway
// (process/tracing_thread.h). A failure in one process (an exception
// included) is that process's result and never stops the others.
#pragma once
#include <sys/types.h>

#include <functional>
#include <vector>

#include "loader/operations.h"

namespace graft {

// Twice the CPUs graft may run on: a process's work mostly waits for its
// threads to stop, so more than one per CPU keeps the CPUs busy.
unsigned default_jobs();

using ProcessOperation = std::function<OperationResult(pid_t)>;
// Called once per process, in the order of `pids` (a result that comes
// early waits for those before it), never two at once: the caller may print
// from it without locking.
using ResultCallback = std::function<void(const OperationResult&)>;

// Runs work(0) ... work(count - 1), at most `jobs` (0: the default) at once,
// each on one thread from start to end, and calls in_order(i) once work(i)
// and every work before it are done, one call at a time, in order. With one
// job, everything runs on the calling thread. An exception of work(i) ends
// no other work; the first (by i) is thrown once all are done.
void run_bounded(size_t count, unsigned jobs, const std::function<void(size_t)>& work,
                 const std::function<void(size_t)>& in_order = nullptr);

// Runs `operation` on every process of `pids` with at most `jobs` (0: the
// default) at once. The results, in the order of `pids`. With one job, all
// run on the calling thread, one after another.
std::vector<OperationResult> run_process_batch(const std::vector<pid_t>& pids, unsigned jobs,
                                               const ProcessOperation& operation,
                                               const ResultCallback& on_result = nullptr);

}  // namespace graft
