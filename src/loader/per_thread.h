// The loader's side of the per-thread models (consistency/per_thread_model.h):
// a transition's options and figures for an operation (apply and revert),
// and `graft revert --model hybrid|lazy', where a patch that a per-thread
// transition applied goes back the same way, with no global stop
// (run_per_thread_revert), then its region goes.
#pragma once
#include <functional>
#include <vector>

#include "consistency/per_thread_model.h"
#include "loader/operations.h"
#include "loader/patch_record.h"
#include "loader/target_session.h"

namespace graft {

// The reverse transition of `rec' (active, applied with a per-thread model),
// from its record and what the process holds now. Each gate and old path
// must be what graft would write for the entry today: an old path must run
// what the entry gets back (the original instructions, or the jump of the
// patch below, which may have been reverted since). Throws, naming the
// function, if not, or if the transition table cannot hold every thread;
// nothing is written.
TransitionPlan reverse_transition_plan(TargetSession& session, const PatchRecord& rec);

// Runs the reverse transition of `plan' and, if every thread moved back,
// `after_switch' (post_unpatch) and the region's removal. If threads could
// not move back in time, the revert turns around: `turned_back' runs
// (post_patch) and it throws, with the patch applied as before.
// TransitionStuck if it could do neither.
void revert_per_thread(TargetSession& session, const PatchRecord& rec, const TransitionPlan& plan,
                       const OperationOptions& options, OperationResult& result,
                       const std::function<void()>& after_switch,
                       const std::function<void()>& turned_back);

// A cumulative patch's switch is over (under a per-thread model: every
// thread runs the new code, none is in an old path): the functions it put
// back to their original leave its record, and every old path of its gates
// is rebased on the original code (what a per-thread revert gives the
// entries back once the patches it replaced are gone; and, for a function
// put back, where a thread still at its gate must go, whatever the revert's
// table says of it). The record is rewritten in one write. Done by the
// apply, or by recovery if the apply's graft died first.
void settle_replace(const ProcessMemory& memory, PatchRecord& rec);

// Whether `rec' is a cumulative patch whose switch completed but whose
// record settle_replace() has not settled yet.
bool unsettled(const PatchRecord& rec);

// The record state of a transition's phase.
RecordState record_state(TransitionPhase phase);

// The transition's figures in an operation's result.
void record_transition(const TransitionResult& t, OperationResult& result);

// The options of a transition of `rec' for an operation: its model, force,
// timeouts, and the record's state written as the transition goes.
TransitionOptions transition_options(const OperationOptions& options, const ProcessMemory& memory,
                                     const PatchRecord& rec);

// The warning of --force, as the kernel gives it, if threads were moved
// unchecked (to the `code' code: "new" or "old").
void warn_forced(const OperationOptions& options, pid_t pid, size_t forced, const char* code);

}  // namespace graft
