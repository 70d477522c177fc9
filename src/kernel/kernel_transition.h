// Following a livepatch transition through sysfs until every task has
// switched: progress, a report of the tasks still pending (with their
// stacks) after a while, and at the time-out either livepatch's reverse
// transition (the default) or its force (unsafe, on request).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "kernel/livepatch_sysfs.h"

namespace graft::kernel {

enum class TransitionOutcome {
  Completed,         // every task switched
  Reversed,          // timed out; the transition went back
  Forced,            // timed out; completed with force
  ReverseIncomplete  // timed out, and the reverse transition too
};
const char* outcome_name(TransitionOutcome o);

struct TransitionOptions {
  double timeout_s = 60;
  double report_after_s = 2;
  bool force = false;
};

struct TransitionEvent {
  enum class Kind { Progress, Pending, Forcing, Reversing } kind;
  double elapsed_s = 0;
  std::vector<PendingTask> pending;
};

struct TransitionResult {
  TransitionOutcome outcome = TransitionOutcome::Completed;
  double seconds = 0;   // until the transition ended
  std::vector<PendingTask> pending_at_report;
};

// `patching`: the transition enables the patch (else it disables it).
TransitionResult follow_transition(const LivepatchSysfs& sysfs, const std::string& name, bool patching,
                                   const TransitionOptions& options,
                                   const std::function<void(const TransitionEvent&)>& on_event);

}  // namespace graft::kernel
