// graft status: for each stored patch (or a given file), every process that
// maps its target and whether it carries the patch, or why it cannot.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "kernel/livepatch_sysfs.h"
#include "ops/desired_state.h"
#include "ops/host_state.h"
#include "ops/process_scan.h"

namespace graft::ops {

enum class ProcessState { Patched, NotPatched, Unpatchable };
std::string process_state_name(ProcessState s);

struct ProcessStatus {
  pid_t pid = 0;
  std::string command;
  ProcessState state = ProcessState::NotPatched;
  std::string reason;  // why not patched / why it cannot be ("" if patched)
};

struct PatchStatus {
  const DesiredPatch* patch = nullptr;
  std::vector<ProcessStatus> processes;  // empty unless the patch is applicable
  size_t count(ProcessState s) const;
};

// The running kernel's livepatches (graft apply --kernel's, or anyone's).
struct KernelStatus {
  bool livepatch = false;  // the kernel offers livepatch (/sys/kernel/livepatch)
  std::vector<kernel::LivepatchState> patches;
  size_t pending_tasks = 0;  // tasks a transition in progress still waits for
  // Of the transition in progress: "patching", "unpatching", or "" when
  // sysfs cannot tell (see kernel_status).
  std::string direction;
  std::string error;         // sysfs held what the kernel never writes
  // Every patch enabled and its transition complete.
  bool settled() const;
};

struct StatusReport {
  std::vector<PatchStatus> patches;
  size_t uninspectable = 0;
  KernelStatus kernel;
  // True when every process mapping an applicable patch's target carries
  // it and every kernel livepatch is enabled with its transition complete.
  bool all_patched() const;
};

StatusReport patch_status(const DesiredState& state, const HostState& host, BuildIdCache& cache);

// What `sysfs` shows of the kernel's livepatches.
KernelStatus kernel_status(const kernel::LivepatchSysfs& sysfs);

// Why graft cannot change this process now, if something in /proc says so:
// another user's process (as non-root), a debugger attached, a graft
// working on it. nullopt otherwise.
std::optional<std::string> obstacle(pid_t pid);

}  // namespace graft::ops
