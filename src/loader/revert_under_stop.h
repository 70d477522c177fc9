// Takes a patch out of a process: restores each entry the patch still
// redirects (to the patch below it in the stack, or the original bytes)
// under the stop model, then unmaps its region. Shared by `graft revert`
// and by the recovery of an interrupted apply or revert.
#pragma once
#include <functional>
#include <vector>

#include "consistency/switch_plan.h"
#include "loader/operations.h"
#include "loader/patch_record.h"
#include "loader/target_session.h"

namespace graft {

// The record is marked "reverting" before the first write; if the switch
// fails, it gets its state back and nothing is written. `redirected`
// receives how many entries still led to the patch. `after_switch` runs
// once nothing leads to the patch, before its region goes.
// `rec` is one of the session's records; the session must be attached.
void unload_patch(TargetSession& session, const PatchRecord& rec, const OperationOptions& options, SwitchResult& s,
                  size_t* redirected = nullptr, const std::function<void()>& after_switch = {},
                  size_t* returns_restored = nullptr);

}  // namespace graft
