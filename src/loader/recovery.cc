#include "loader/recovery.h"

#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <set>

#include "common/clock.h"
#include "common/error.h"
#include "common/realtime_priority.h"
#include "common/unique_resource.h"
#include "loader/per_thread.h"
#include "loader/region.h"
#include "loader/revert_during_transition.h"
#include "loader/revert_under_stop.h"
#include "process/remote_syscalls.h"
#include "process/tracing_thread.h"

namespace graft {

namespace {

// File descriptors of the process open on one of graft's memfds. graft
// closes its memfd right after mapping it, so any such descriptor is left
// from a graft that died in between.
std::vector<int> leaked_memfds(pid_t pid) {
  std::vector<int> out;
  std::string dir = fmt::format("/proc/{}/fd", pid);
  UniqueDir d(opendir(dir.c_str()));
  if (!d) return out;
  const std::string prefix = std::string("/memfd:") + kRegionNamePrefix;
  while (dirent* e = readdir(d.get())) {
    char* end;
    long fd = std::strtol(e->d_name, &end, 10);
    if (*end != 0 || fd < 0) continue;
    char target[256];
    ssize_t n = readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    if (std::string(target, static_cast<size_t>(n)).rfind(prefix, 0) == 0)
      out.push_back(static_cast<int>(fd));
  }
  return out;
}

// A per-thread transition whose driving graft still runs is in progress,
// not interrupted.
bool interrupted(const PatchRecord& r, const ProcessMemory& memory) {
  if (r.state == RecordState::Active) return unsettled(r);
  return !(r.in_transition() && transition_driven(memory, r));
}

}  // namespace

namespace {

bool needs_recovery(const TargetSession& session) {
  if (!leaked_memfds(session.pid()).empty()) return true;
  for (const auto& r : session.records())
    if (interrupted(r, session.memory())) return true;
  for (const auto& bad : session.scan().invalid)
    if (bad.blank) return true;
  return false;
}

}  // namespace

bool needs_recovery(pid_t pid) { return needs_recovery(TargetSession(pid, std::nullopt)); }

std::vector<pid_t> processes_needing_recovery() {
  std::vector<pid_t> out;
  for (pid_t pid : all_processes()) {
    try {
      if (needs_recovery(pid)) out.push_back(pid);
    } catch (const Error&) {
      // Exited, a kernel thread, or not ours to read.
    }
  }
  return out;
}

namespace {

// Repairs the process of `session`, on the thread that traces it; detached
// again after.
RecoveryResult recover_here(TargetSession& session, const OperationOptions& options) {
  RecoveryResult result;
  result.pid = session.pid();
  RealtimePriority priority;
  try {
    TracingScope scope(session);
    // Traced first, then read: from then on no other graft can be working
    // on it.
    Tracer& tracer = session.attach();
    session.reread();
    const ProcessMemory& memory = session.memory();
    pid_t pid = session.pid();
    std::vector<PatchRecord>& records = session.records();

    for (const auto& bad : session.scan().invalid) {
      if (!bad.blank) continue;
      tracer.stop_all();
      remove_region(session, bad.range.start, bad.range.size);
      tracer.resume_all();
      result.actions.push_back(fmt::format(
          "removed an empty graft region at {:#x} (graft died before writing to it)", bad.range.start));
    }
    // Newest first, so an entry restored to a lower patch's jump ends up
    // at the right one even if several operations were interrupted.
    std::set<std::string> replaced;  // ids of patches a settled cumulative patch replaced
    for (auto it = records.rbegin(); it != records.rend(); ++it) {
      PatchRecord& rec = *it;  // its state is updated below, for the records after it
      // A patch a settled cumulative patch replaced (marked above) is removed.
      if (!replaced.count(rec.id) && !interrupted(rec, memory)) continue;
      if (unsettled(rec)) {
        // Its switch completed: every earlier patch of its target is
        // replaced, whatever state its graft had time to write. Marked
        // before the record is settled (after it, nothing would say so).
        for (auto& r : records)
          if (r.build_id == rec.build_id && r.seq < rec.seq) {
            replaced.insert(r.id);
            if (r.state == RecordState::Active) {
              write_record_state(memory, r, RecordState::Reverting);
              r.state = RecordState::Reverting;
            }
          }
        settle_replace(memory, rec);
        result.actions.push_back(fmt::format("settled the record of cumulative patch {} (its graft died "
                                             "right after the switch)",
                                             rec.label()));
        continue;
      }
      SwitchResult s;
      size_t redirected = 0;
      size_t returns = 0;
      unload_patch(session, rec, options, s, &redirected, {}, &returns);
      if (returns)
        result.actions.push_back(fmt::format("put back the return address of {} thread(s) that still led to "
                                             "an exit stub of patch {}",
                                             returns, rec.label()));
      result.actions.push_back(
          rec.in_transition()
              ? fmt::format("rolled back the abandoned {} transition of patch {} (the graft driving it "
                            "is gone; {} of {} entries led to its gates)",
                            rec.model, rec.label(), redirected, rec.functions.size())
          : rec.state == RecordState::Loading
              ? fmt::format("rolled back the interrupted apply of patch {} ({} of {} entries had "
                            "been redirected)",
                            rec.label(), redirected, rec.functions.size())
              : fmt::format("completed the interrupted revert of patch {} ({} of {} entries were "
                            "still redirected)",
                            rec.label(), redirected, rec.functions.size()));
    }
    auto fds = leaked_memfds(pid);
    if (!fds.empty()) {
      tracer.stop_all();
      RemoteSyscalls sys(tracer, memory, session.maps());
      for (int fd : fds) {
        sys.call(SYS_close, static_cast<uint64_t>(fd));
        result.actions.push_back(fmt::format("closed graft's memfd left open as descriptor {}", fd));
      }
    }
    session.detach();
    result.ok = true;
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

}  // namespace

RecoveryResult recover_process(pid_t pid, const OperationOptions& options) {
  RecoveryResult result;
  result.pid = pid;
  try {
    run_tracing_thread([&] {
      TargetSession session(pid, std::nullopt);
      result = recover_here(session, options);
    });
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

void recover_before(TargetSession& session, const OperationOptions& options, OperationResult& result) {
  if (!needs_recovery(session)) return;
  // On a tracing thread of its own, whose exit detaches the threads at
  // once (process/tracing_thread.h): the operation attaches again after.
  RecoveryResult r;
  run_tracing_thread([&] { r = recover_here(session, options); });
  if (!r.ok)
    fail("process {} holds what an interrupted graft left, and graft could not repair it first: {}",
         session.pid(), r.error);
  session.reread();
  result.recovered = std::move(r.actions);
}

}  // namespace graft
