// Runs a patch's callbacks (GRAFT_PRE_PATCH and friends) inside the target.
//
// A callback runs on one thread of the process (remote_call: registers
// saved, the call made, registers restored): preferably one blocked in a
// system call other than futex, where it is unlikely to hold a lock the
// callback may need (the main thread first), else the main thread. The other threads keep running: the callbacks of the stop
// model run outside the global stop, as the kernel runs livepatch's
// callbacks outside the transition. The return trap is the first page of the
// patch's own region (its record, mapped read-only).
#pragma once
#include <optional>
#include <string>

#include "loader/patch_record.h"
#include "loader/target_session.h"
#include "process/remote_call.h"

namespace graft {

struct CallbackRun {
  std::string function;
  RemoteCallResult result;
  bool ok() const { return result.status == RemoteCallResult::Status::Returned; }
  // "pre_patch callback `check' of patch fix (1a2b...) returned 5"
  std::string describe(Callback::Kind kind, const PatchRecord& patch) const;
};

// Calls `function` in the process for a patch (its callbacks, the IFUNC
// resolvers of its references): on the thread chosen as above, stopped for
// the call if it was running, returning through the patch's thunk when graft
// has written it (kill-safe), else through the trap at the region's first
// page. Throws only if the process cannot be traced any more.
RemoteCallResult call_for_patch(TargetSession& session, const PatchRecord& patch, RemoteAddress function,
                                const uint64_t (&args)[6], double timeout_s);

// nullopt when the patch has no callback of this kind. Throws only if the
// process cannot be traced any more (exited).
std::optional<CallbackRun> run_callback(TargetSession& session, const PatchRecord& patch, Callback::Kind kind,
                                        double timeout_s);

}  // namespace graft
