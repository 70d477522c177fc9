// `graft revert' of a patch whose per-thread transition is still running.
//
// The transition is driven by the `graft apply' that started it (it holds
// the target under ptrace, so no other graft can stop its threads). A
// revert asks that graft to reverse direction through the transition area
// (revert_request), and waits until the region is gone: every thread back
// in the old universe, the entries restored, the region unmapped.
#pragma once
#include "loader/operations.h"
#include "loader/patch_record.h"
#include "process/memory.h"

namespace graft {

// Throws graft::Error when the reversal cannot be asked for or did not
// happen within `timeout_s` (plus the driver's own roll-back time).
// Returns the pid of the graft that reversed it.
int revert_during_transition(const PatchRecord& record, pid_t pid, const ProcessMemory& memory,
                              double timeout_s);

// Whether the graft that drives `record`'s transition is still running
// (otherwise the transition is abandoned: recovery rolls it back).
bool transition_driven(const ProcessMemory& memory, const PatchRecord& record);

// A process with a transition in progress accepts no other change.
void refuse_if_in_transition(const std::vector<PatchRecord>& records, pid_t pid,
                             const ProcessMemory& memory, const PatchRecord* except = nullptr);

}  // namespace graft
