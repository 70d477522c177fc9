// graft sync: every process that maps a stored patch's target gets every
// applicable patch of that target it does not carry yet, in stacking order.
// Idempotent: a patch a process already carries counts as success.
#pragma once
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "loader/operations.h"
#include "security/audit_log.h"
#include "ops/desired_state.h"
#include "ops/process_scan.h"

namespace graft::ops {

// Skipped: not tried, because the skip predicate said so (the daemon does
// not retry a patch that failed in a process). NotReady: not tried, the
// target is still being mapped (see target_readiness.h). Interrupted: a
// signal asked graft to stop: not tried, or rolled back (`tried`).
enum class SyncOutcome { Applied, AlreadyApplied, Failed, Skipped, NotReady, Interrupted };
std::string outcome_name(SyncOutcome o);

struct SyncAction {
  pid_t pid = 0;
  uint64_t start_time = 0;
  std::string command;
  StoredPatch patch;
  SyncOutcome outcome = SyncOutcome::Failed;
  bool tried = false;      // an apply ran (result is its result)
  OperationResult result;  // of the apply (error set for a failure)
  // Applied or already applied.
  bool carried() const { return outcome == SyncOutcome::Applied || outcome == SyncOutcome::AlreadyApplied; }
};

// Whether processes hidden from this caller make a result unknowable: as
// non-root, yes; root is refused only where no graft could go either (the
// init of an enclosing container, for one), which is counted and shown but
// not held against the host.
bool blind_spots(size_t uninspectable);

struct SyncReport {
  std::vector<SyncAction> actions;
  size_t uninspectable = 0;
  std::vector<std::string> problems;  // store files, refused patches
  size_t count(SyncOutcome o) const;
  // Every applicable process carries every applicable patch, every stored
  // patch could be read and is allowed by the policy, and (see
  // blind_spots()) no process was hidden from a non-root caller.
  bool ok() const {
    for (const auto& a : actions)
      if (!a.carried()) return false;
    return !blind_spots(uninspectable) && problems.empty();
  }
};

using SyncCallback = std::function<void(const SyncAction&)>;

// The patches of `state` that `process` should carry and does not, applied
// in order; an apply that fails stops the patches stacked after it on the
// same target (they are reported failed, not tried). Once SIGINT or SIGTERM
// asked graft to stop (common/interrupt.h), no apply starts, and one
// running rolls back.
using SkipPredicate = std::function<bool(const TargetProcess&, const StoredPatch&)>;
std::vector<SyncAction> converge_process(const DesiredState& state, const TargetProcess& process,
                                         BuildIdCache& cache, const OperationOptions& options,
                                         const SyncCallback& done, const SkipPredicate& skip = nullptr);

// converge_process() on each of `processes`, `jobs` at once (0:
// loader/process_batch.h's default). `converged(i, actions, finished)` is
// called for each in the order of `processes`, one at a time, with the
// time its applies ended.
using ConvergedCallback = std::function<void(size_t, std::vector<SyncAction>&, std::chrono::steady_clock::time_point)>;
void converge_processes(const DesiredState& state, const std::vector<TargetProcess>& processes,
                        BuildIdCache& cache, const OperationOptions& options, const SkipPredicate& skip,
                        unsigned jobs, const ConvergedCallback& converged);

// `jobs` processes at once (0: loader/process_batch.h's default); `done` is
// called for each action from one thread at a time, process by process in
// the scan's order.
SyncReport sync_all(const DesiredState& state, BuildIdCache& cache, const OperationOptions& options,
                    const SyncCallback& done, const SkipPredicate& skip = nullptr, unsigned jobs = 1);

// Whether `pid` carries this patch already (applied, not in transition).
bool carries_patch(pid_t pid, const std::string& sha256);

// The audit log's record of one apply that sync or the daemon made.
AuditEvent audit_event_of(const SyncAction& action);

}  // namespace graft::ops
