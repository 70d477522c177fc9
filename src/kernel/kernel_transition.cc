#include "kernel/kernel_transition.h"

#include <chrono>
#include <thread>

#include "common/error.h"

namespace graft::kernel {

const char* outcome_name(TransitionOutcome o) {
  switch (o) {
    case TransitionOutcome::Completed: return "completed";
    case TransitionOutcome::Reversed: return "reversed";
    case TransitionOutcome::Forced: return "forced";
    case TransitionOutcome::ReverseIncomplete: return "reverse-incomplete";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// True once the patch is out of transition (or gone: a disabled patch is
// freed and its directory removed).
bool settled(const LivepatchSysfs& sysfs, const std::string& name, bool* enabled) {
  auto s = sysfs.read(name);
  if (!s) {
    *enabled = false;
    return true;
  }
  *enabled = s->enabled;
  return !s->in_transition;
}

}  // namespace

TransitionResult follow_transition(const LivepatchSysfs& sysfs, const std::string& name, bool patching,
                                   const TransitionOptions& o,
                                   const std::function<void(const TransitionEvent&)>& on_event) {
  auto start = Clock::now();
  TransitionResult r;
  bool reported = false;
  double next_progress = 1;
  int target = patching ? 1 : 0;
  // True once the transition has ended the way it was asked to.
  auto ended = [&] {
    bool enabled = false;
    if (!settled(sysfs, name, &enabled)) return false;
    if (enabled != patching) fail("patch {}: the transition ended with the patch {}", name, enabled ? "enabled" : "disabled");
    r.seconds = since(start);
    return true;
  };
  for (;;) {
    if (ended()) return r;
    double t = since(start);
    if (!reported && t >= o.report_after_s) {
      reported = true;
      r.pending_at_report = sysfs.pending_tasks(target);
      on_event({TransitionEvent::Kind::Pending, t, r.pending_at_report});
      next_progress = t + 1;
    } else if (t >= next_progress) {
      next_progress = t + 1;
      on_event({TransitionEvent::Kind::Progress, t, sysfs.pending_tasks(target)});
    }
    if (t >= o.timeout_s) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto pending = sysfs.pending_tasks(target);
  // The last tasks may have switched since the last poll: a finished
  // transition must be neither reversed nor forced.
  if (ended()) return r;
  on_event({o.force ? TransitionEvent::Kind::Forcing : TransitionEvent::Kind::Reversing, since(start), pending});
  try {
    if (o.force) {
      sysfs.force(name);
    } else {
      // Writing the opposite state while in transition makes livepatch
      // reverse it: tasks already switched go back.
      sysfs.set_enabled(name, !patching);
    }
  } catch (const Error&) {
    // Refused (force: EINVAL once no transition runs) or the patch is
    // gone: the transition ended between the check and the write. Report
    // what sysfs says.
    if (ended()) return r;
    throw;
  }
  r.outcome = o.force ? TransitionOutcome::Forced : TransitionOutcome::Reversed;
  auto second = Clock::now();
  for (;;) {
    bool enabled = false;
    if (settled(sysfs, name, &enabled)) break;
    if (since(second) >= o.timeout_s) {
      r.outcome = TransitionOutcome::ReverseIncomplete;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.seconds = since(start);
  return r;
}

}  // namespace graft::kernel
