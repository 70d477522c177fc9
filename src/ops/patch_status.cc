#include "ops/patch_status.h"

#include <unistd.h>

#include <sstream>

#include "common/error.h"
#include "common/file.h"
#include "loader/operations.h"

namespace graft::ops {

std::string process_state_name(ProcessState s) {
  switch (s) {
    case ProcessState::Patched: return "patched";
    case ProcessState::NotPatched: return "not-patched";
    case ProcessState::Unpatchable: return "unpatchable";
  }
  return "?";
}

size_t PatchStatus::count(ProcessState s) const {
  size_t n = 0;
  for (const auto& p : processes) n += p.state == s;
  return n;
}

bool KernelStatus::settled() const {
  if (!error.empty()) return false;
  for (const auto& p : patches)
    if (!p.enabled || p.in_transition) return false;
  return true;
}

bool StatusReport::all_patched() const {
  for (const auto& p : patches)
    if (p.count(ProcessState::Patched) != p.processes.size()) return false;
  return kernel.settled();
}

KernelStatus kernel_status(const kernel::LivepatchSysfs& sysfs) {
  KernelStatus k;
  k.livepatch = sysfs.available();
  if (!k.livepatch) return k;
  try {
    for (const auto& name : sysfs.names())
      if (auto state = sysfs.read(name)) k.patches.push_back(std::move(*state));
    // One transition at a time: livepatch's rule. Tasks move to 1 while
    // patching, to 0 while unpatching. livepatch sets `enabled' only once
    // it has started a transition, either way: a patch in transition and
    // enabled is patching (or about to unpatch), but one not enabled is
    // unpatching only if a task is still at 1; with none, it is the start
    // of an enable (callbacks, ftrace: long under emulation) or the end of
    // a disable, which sysfs does not tell apart.
    for (const auto& p : k.patches) {
      if (!p.in_transition) continue;
      if (p.enabled) {
        k.direction = "patching";
        k.pending_tasks = sysfs.pending_tasks(1).size();
      } else if (size_t at_one = sysfs.pending_tasks(0).size()) {
        k.direction = "unpatching";
        k.pending_tasks = at_one;
      }
    }
  } catch (const Error& e) {
    k.error = e.what();
  }
  return k;
}

namespace {

std::string comm_of(pid_t pid) {
  try {
    std::string c = read_text_file(fmt::format("/proc/{}/comm", pid), 4096);
    if (!c.empty() && c.back() == '\n') c.pop_back();
    return c;
  } catch (const Error&) {
    return "?";
  }
}

int ptrace_scope() {
  try {
    return std::stoi(read_text_file("/proc/sys/kernel/yama/ptrace_scope", 64));
  } catch (const std::exception&) {
    return 0;
  }
}

// A failure remembered from sync or the daemon, with what in the process
// explains it: a seccomp filter (systemd's MemoryDenyWriteExecute= and
// SystemCallFilter= are seccomp filters) refuses the system calls graft
// makes inside the process.
std::string explain_failure(pid_t pid, const std::string& error) {
  auto seccomp = status_field(pid, "Seccomp");
  if (seccomp && *seccomp == "2")
    return "seccomp filter in the process (MemoryDenyWriteExecute or a system call filter): " + error;
  return error;
}

}  // namespace

std::optional<std::string> obstacle(pid_t pid) {
  uid_t me = geteuid();
  if (me != 0) {
    if (auto uids = status_field(pid, "Uid")) {
      std::istringstream in(*uids);
      unsigned long u;
      for (int i = 0; i < 3 && (in >> u); ++i)
        if (u != me)
          return fmt::format("permission: the process runs as uid {}, graft as uid {} (root or the "
                             "process's own user may patch it)",
                             u, me);
    }
    int scope = ptrace_scope();
    if (scope >= 1)
      return fmt::format("permission: kernel.yama.ptrace_scope is {}: only root may attach to it", scope);
  }
  if (auto tracer = status_field(pid, "TracerPid"); tracer && *tracer != "0") {
    pid_t t = std::stoi(*tracer);
    std::string comm = comm_of(t);
    if (comm == "graft")
      return fmt::format("transition in progress: graft pid {} is changing it", t);
    return fmt::format("traced: pid {} ({}) is attached to it as a debugger or tracer", t, comm);
  }
  return std::nullopt;
}

StatusReport patch_status(const DesiredState& state, const HostState& host, BuildIdCache& cache) {
  StatusReport report;
  ProcessScan scan = scan_processes(state.build_ids(), cache);
  report.uninspectable = scan.uninspectable;
  std::map<pid_t, std::optional<ProcessPatches>> listed;
  std::map<pid_t, std::string> unreadable;
  for (const auto& p : scan.processes) {
    try {
      listed[p.pid] = list_patches(p.pid);
    } catch (const Error& e) {
      unreadable[p.pid] = e.what();
    }
  }
  for (const auto& d : state.patches) {
    PatchStatus ps;
    ps.patch = &d;
    if (d.standing == Standing::Applicable) {
      for (const auto& p : scan.processes) {
        if (!p.build_ids.count(d.stored.build_id)) continue;
        ProcessStatus s;
        s.pid = p.pid;
        s.command = p.command;
        const ProcessPatches* pp = listed[p.pid] ? &*listed[p.pid] : nullptr;
        const PatchRecord* own = nullptr;
        std::string other_transition;
        if (pp)
          for (const auto& r : pp->patches) {
            if (r.sha256 == d.stored.sha256) own = &r;
            else if (r.in_transition()) other_transition = fmt::format("{} ({})", r.name, r.id);
          }
        if (own && own->state == RecordState::Active) {
          s.state = ProcessState::Patched;
        } else if (!pp) {
          s.state = ProcessState::Unpatchable;
          s.reason = "permission: " + unreadable[p.pid];
        } else if (own && own->in_transition()) {
          s.state = ProcessState::Unpatchable;
          s.reason = fmt::format("transition in progress ({} model, graft pid {})", own->model, own->graft_pid);
        } else if (!other_transition.empty()) {
          s.state = ProcessState::Unpatchable;
          s.reason = "transition in progress: patch " + other_transition;
        } else if (auto why = obstacle(p.pid)) {
          s.state = ProcessState::Unpatchable;
          s.reason = *why;
        } else if (own) {
          s.reason = fmt::format("an interrupted graft left it {}: `graft sync' or `graft recover' "
                                 "repairs it",
                                 state_name(own->state));
        } else if (auto* f = host.failure(p.pid, p.start_time, d.stored.id)) {
          s.state = ProcessState::Unpatchable;
          s.reason = explain_failure(p.pid, *f);
        } else {
          s.reason = "not applied yet";
        }
        ps.processes.push_back(std::move(s));
      }
    }
    report.patches.push_back(std::move(ps));
  }
  report.kernel = kernel_status(kernel::LivepatchSysfs());
  return report;
}

}  // namespace graft::ops
