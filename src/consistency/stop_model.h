// The stop consistency model (kpatch): stop every thread, check every stack,
// write every redirection at once, resume. A thread caught in code being
// replaced runs alone, the others stopped, until it has left that code
// (within a budget); if one stays, resume everything, wait, and retry until
// the timeout; then give up, naming the thread and the function, with
// nothing written.
#pragma once
#include <functional>

#include "consistency/switch_plan.h"
#include "process/memory.h"
#include "process/tracer.h"

namespace graft {

struct StopOptions {
  double timeout_s = 10;
  // After the switch: detach (threads resume untraced) or only resume.
  bool detach_after = true;
  // Runs with every thread stopped and checked, before the first write (to
  // mark the record, so an interrupted switch can be told from a done one).
  std::function<void()> before_writes;
  // Checks only where each thread is (its pc), not its whole stack: for
  // writes that only a thread at that very place could notice.
  bool pc_only = false;
  // Between tries, graft passes on the signals the threads get (a traced
  // thread stops for each until graft does), so that a signalled thread is
  // not held where the signal caught it. Off while int3s or gates of an
  // abandoned transition are in the entries: threads that trap there then
  // wait in their stop, out of the gates, until the next try.
  bool serve_events_between_tries = true;
};

// `while_stopped` runs after the writes, before any thread resumes (to
// update the record). Throws graft::Error on timeout or failure; by then
// nothing of the plan has been written and every thread runs again.
// `result` is filled as it goes, so it is meaningful after a failure too.
void run_stop_model(Tracer& tracer, const ProcessMemory& memory, const SwitchPlan& plan,
                    const StopOptions& options, const std::function<void()>& while_stopped,
                    SwitchResult& result);

// A return trap a graft died with (arch/x86_64/stop_stub.h, at `stub`):
// the thread it names gets its return address back, or is moved out of the
// stub if it is inside, and the stub is freed. True if one was in use.
bool release_stop_stub(Tracer& tracer, const ProcessMemory& memory, uint64_t stub);

}  // namespace graft
