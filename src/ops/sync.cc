#include "ops/sync.h"

#include <unistd.h>

#include "common/interrupt.h"
#include "common/realtime_priority.h"
#include "loader/process_batch.h"
#include "ops/target_readiness.h"

namespace graft::ops {

std::string outcome_name(SyncOutcome o) {
  switch (o) {
    case SyncOutcome::Applied: return "applied";
    case SyncOutcome::AlreadyApplied: return "already-applied";
    case SyncOutcome::Failed: return "failed";
    case SyncOutcome::Skipped: return "skipped";
    case SyncOutcome::NotReady: return "not-ready";
    case SyncOutcome::Interrupted: return "interrupted";
  }
  return "?";
}

size_t SyncReport::count(SyncOutcome o) const {
  size_t n = 0;
  for (const auto& a : actions) n += a.outcome == o;
  return n;
}

bool blind_spots(size_t uninspectable) { return uninspectable > 0 && geteuid() != 0; }

bool carries_patch(pid_t pid, const std::string& sha256) {
  try {
    for (const auto& r : list_patches(pid).patches)
      if (r.sha256 == sha256 && r.state == RecordState::Active) return true;
  } catch (const Error&) {
  }
  return false;
}

std::vector<SyncAction> converge_process(const DesiredState& state, const TargetProcess& process,
                                         BuildIdCache& cache, const OperationOptions& options,
                                         const SyncCallback& done, const SkipPredicate& skip) {
  std::vector<SyncAction> out;
  std::vector<PatchRecord> records;
  std::string unreadable;
  try {
    records = list_patches(process.pid).patches;
  } catch (const Error& e) {
    unreadable = e.what();
  }
  for (const auto& build_id : process.build_ids) {
    auto group = state.by_build_id.find(build_id);
    if (group == state.by_build_id.end()) continue;
    std::string blocked;  // the earlier patch of this target that failed
    for (size_t i : group->second) {
      const DesiredPatch& d = state.patches[i];
      SyncAction a;
      a.pid = process.pid;
      a.start_time = process.start_time;
      a.command = process.command;
      a.patch = d.stored;
      a.result.pid = process.pid;
      a.result.patch_id = d.stored.id;
      a.result.patch_name = d.stored.name;
      a.result.patch_sha256 = d.stored.sha256;
      bool carried = false;
      for (const auto& r : records) carried |= r.sha256 == d.stored.sha256 && r.state == RecordState::Active;
      if (carried) {
        a.outcome = SyncOutcome::AlreadyApplied;
        a.result.ok = true;
      } else if (skip && skip(process, d.stored)) {
        a.outcome = SyncOutcome::Skipped;
        a.result.error = "failed before in this process; not retried";
      } else if (int sig = interrupt_signal()) {
        a.outcome = SyncOutcome::Interrupted;
        a.result.error = fmt::format("not tried: graft was asked to stop ({})", signal_name(sig));
        a.result.error_code = ErrorCode::interrupted;
      } else if (!unreadable.empty()) {
        a.result.error = unreadable;
      } else if (!blocked.empty()) {
        a.result.error = fmt::format("not tried: {}, stacked before it, failed", blocked);
      } else if (auto why = target_not_ready(process.pid, d.patch, cache); !why.empty()) {
        a.outcome = SyncOutcome::NotReady;
        a.result.error = why;
      } else {
        RealtimePriority priority;  // as graft apply: see realtime_priority.h
        a.result = apply_patch(d.patch, process.pid, options);
        a.tried = true;
        a.outcome = a.result.ok                                          ? SyncOutcome::Applied
                    : a.result.error_code == ErrorCode::interrupted ? SyncOutcome::Interrupted
                                                                    : SyncOutcome::Failed;
      }
      if (!a.carried() && blocked.empty())
        blocked = fmt::format("{} ({})", d.stored.name, d.stored.id);
      done(a);
      out.push_back(std::move(a));
    }
  }
  return out;
}

SyncReport sync_all(const DesiredState& state, BuildIdCache& cache, const OperationOptions& options,
                    const SyncCallback& done, const SkipPredicate& skip, unsigned jobs) {
  SyncReport report;
  report.problems = state.problems;
  for (const auto& d : state.patches)
    if (d.standing == Standing::Refused)
      report.problems.push_back(fmt::format("{} ({}): {}", d.stored.name, d.stored.id, d.reason));
  if (state.by_build_id.empty()) return report;
  ProcessScan scan = scan_processes(state.build_ids(), cache);
  report.uninspectable = scan.uninspectable;
  converge_processes(state, scan.processes, cache, options, skip, jobs,
                     [&](size_t, std::vector<SyncAction>& actions, std::chrono::steady_clock::time_point) {
                       for (auto& a : actions) {
                         done(a);
                         report.actions.push_back(std::move(a));
                       }
                     });
  return report;
}

void converge_processes(const DesiredState& state, const std::vector<TargetProcess>& processes,
                        BuildIdCache& cache, const OperationOptions& options, const SkipPredicate& skip,
                        unsigned jobs, const ConvergedCallback& converged) {
  std::vector<std::vector<SyncAction>> actions(processes.size());
  std::vector<std::chrono::steady_clock::time_point> finished(processes.size());
  run_bounded(
      processes.size(), jobs,
      [&](size_t i) {
        actions[i] = converge_process(state, processes[i], cache, options, [](const SyncAction&) {}, skip);
        finished[i] = std::chrono::steady_clock::now();
      },
      [&](size_t i) { converged(i, actions[i], finished[i]); });
}

AuditEvent audit_event_of(const SyncAction& a) {
  AuditEvent e;
  e.action = "apply";
  e.result = a.result.ok ? "ok" : "failed";
  e.pid = a.pid;
  e.patch_file = a.patch.file;
  e.patch_name = a.patch.name;
  e.patch_id = a.patch.id;
  e.patch_sha256 = a.patch.sha256;
  e.signer = a.patch.signer;
  e.reason = a.result.error;
  return e;
}

}  // namespace graft::ops
