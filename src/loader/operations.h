// The operations an operator runs on a process: apply a patch, revert one,
// list what is applied. Each returns a result per process and never throws
// for a failure in the target: the result carries the reason, and the
// process is left as it was.
#pragma once
#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "consistency/model.h"
#include "loader/patch_record.h"
#include "patch/patch.h"
#include "process/process_list.h"

namespace graft {

struct OperationOptions {
  // Also how long to wait for another graft working on the same process
  // (ProcessLock) before refusing.
  double timeout_s = 10;
  // For a revert, nullopt is the model the patch was applied with; for an
  // apply, kDefaultModel.
  std::optional<Model> model;
  bool force = false;  // per-thread models: move threads without checks
  double report_after_s = 2;   // per-thread models: report pending threads after this
  // Progress lines and warnings for the operator, while the operation runs.
  std::function<void(const std::string&)> progress;
};

struct OperationResult {
  pid_t pid = 0;
  bool ok = false;
  std::string error;
  ErrorCode error_code = ErrorCode::failed;
  // A failure other than left_in_transition: whether the process was
  // verified to hold what it held before (nullopt: it could not be read
  // again, e.g. it exited); if not, `left' says what graft left there.
  std::optional<bool> unchanged;
  std::string left;
  std::string patch_id, patch_name;
  std::string patch_sha256;  // for the audit log
  double total_ms = 0;
  double pause_ms = 0;      // global stop of the successful switch
  double max_pause_ms = 0;  // longest global stop, retries included
  int retries = 0;
  int run_out = 0;  // threads caught in replaced code and run alone out of it
  size_t threads = 0;
  // Per-thread models:
  Model model = Model::stop;
  double transition_ms = 0;  // first gate write to last entry write
  size_t stalls = 0;         // single-thread stops
  double stall_max_us = 0, stall_p99_us = 0;
  size_t forced = 0;         // threads moved without checks
  size_t rewound = 0;        // threads moved after being taken back out of a gate
  // Return addresses pointed at an exit stub, returns through one, and
  // return addresses put back; from the last such return to the end.
  size_t returns_rewritten = 0, returns_passed = 0, returns_restored = 0;
  double return_to_end_ms = -1;
  long breakpoint_hits = 0;  // threads that trapped on an entry being written
  bool rolled_back = false;  // the transition was reversed; the process is as before
  bool left_in_transition = false;  // failed, and the patch stays half-applied (see error)
  // Repairs of an earlier, interrupted graft done first (see recovery.h).
  std::vector<std::string> recovered;
  // Said to the operator even on success: a callback that crashed after
  // the switch, the runtime that was injected, patches a cumulative one
  // replaced.
  std::vector<std::string> notes;
};

OperationResult apply_patch(const Patch& patch, pid_t pid, const OperationOptions& options);
// `which`: a patch id (or a unique prefix of one) or a patch name.
OperationResult revert_patch(const std::string& which, pid_t pid, const OperationOptions& options);

struct ProcessPatches {
  pid_t pid = 0;
  std::string command;
  std::vector<PatchRecord> patches;
  std::vector<size_t> redirected;  // per patch: entries that lead to it now
  bool traced = false;             // a debugger or a graft is attached now
  std::optional<RuntimeRecord> runtime;  // injected by graft
  std::vector<std::string> problems;
  std::map<std::string, TransitionStatus> transitions;  // by patch id, for patches in transition
};
ProcessPatches list_patches(pid_t pid);

// Every process (but graft) that maps an object with this build-id.
std::vector<pid_t> processes_mapping(const std::string& build_id);
// Every process that holds a graft region.
std::vector<pid_t> processes_with_patches();

}  // namespace graft
