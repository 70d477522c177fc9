// The ways a patch's entries switch between the old code and the new, one
// class each, behind one interface:
//
//   direct stop   every thread stopped, each entry written in turn (the
//                 stop model with one function, or a cumulative patch);
//   gated stop    every thread stopped, each entry first sent to a switch
//                 gate, then one flag byte switches them all at once, so a
//                 graft killed between two entry writes leaves them all old
//                 or all new (the stop model with several functions);
//   per thread    every entry sent to a gate that asks the thread's own
//                 universe; threads move one by one (hybrid, lazy).
//
// Each owns its region pages, its per-function checks, its gates, its
// record fields and its switch, forward and back. The apply and the revert
// drivers (apply_patch.cc, revert_patch.cc) choose one and run its passes.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "arch/x86_64/stub_unwind_info.h"
#include "common/hash.h"
#include "consistency/model.h"
#include "consistency/switch_plan.h"
#include "loader/apply_plan.h"
#include "loader/operations.h"
#include "loader/patch_record.h"
#include "loader/region.h"
#include "loader/target_session.h"
#include "process/memory_reader.h"

namespace graft {

enum class SwitchKind { direct_stop, gated_stop, per_thread };
const char* switch_kind_name(SwitchKind kind);

// What an apply plans, pass by pass, and every method reads or completes.
struct ApplyDraft {
  pid_t pid = 0;
  PatchRecord record;                    // written to the region
  std::vector<PlannedFunction> planned;  // one per function of the record
  SwitchPlan plan;                       // stop methods: writes and code no thread may be in
  std::vector<BusyRange> restored_code;  // per thread: functions put back (their new code)
  bool replaces = false;                 // a cumulative patch that replaces applied ones
  // The rw pages the method lays out for its stubs' unwind information
  // (libgcc's `struct object', then the .eh_frame), and why it is not
  // registered ("" once it is: the stubs may serve where libgcc unwinds).
  uint64_t stubs_unwind = 0;
  std::string stubs_unwind_missing = "not registered";
};

// What a switch forward has at hand.
struct ForwardContext {
  TargetSession& session;
  ApplyDraft& draft;
  const Bytes& gates;  // as gates() planned them
  const OperationOptions& options;
  OperationResult& result;
  const LoadedObject& target;  // the object the patch replaces functions of
  // Marks the replaced patches for removal, right after the record is
  // marked applied (a cumulative patch; a no-op otherwise).
  std::function<void()> mark_replaced;
};

// What a switch back (revert) has at hand.
struct BackwardContext {
  TargetSession& session;
  const PatchRecord& record;
  const OperationOptions& options;  // its model is the one the revert runs
  OperationResult& result;
  std::function<void()> after_switch;  // once nothing leads to the patch (post_unpatch)
  std::function<void()> turned_back;   // per thread: the revert turned around (post_patch)
};

class SwitchMethod {
 public:
  virtual ~SwitchMethod() = default;
  virtual SwitchKind kind() const = 0;
  // Whether threads the process creates must be traced from their first
  // instruction while it switches.
  virtual bool traces_clones() const { return false; }

  // Apply, in this order:
  // Throws graft::Error naming the function if it cannot switch this way.
  // `rebased`: its old path is rebased on the original code later (a
  // cumulative patch).
  virtual void check(const PlannedFunction& p, bool rebased, const MemoryReader& memory) const = 0;
  // Plans putting `f` (of a replaced patch) back to `original`; its entry
  // holds `now`.
  virtual void plan_restore(ApplyDraft& d, const FunctionRecord& f, const Bytes& original, const Bytes& now,
                            const MemoryReader& memory) const = 0;
  // Sets its record fields to the widest values they can take, to size the
  // record pages.
  virtual void widen(PatchRecord& widest) const = 0;
  // Its pages, from layout.image_offset (the end of the record pages) on;
  // moves image_offset past them. `threads`: the process's thread count.
  virtual void lay_out(ApplyDraft& d, RegionLayout& layout, size_t threads) = 0;
  // The region's address is known: its record fields.
  virtual void place(ApplyDraft& d, const RegionLayout& layout) = 0;
  // The replacements' addresses are known: the gate pages (empty if none),
  // and the rest of the switch's plan.
  virtual Bytes gates(ApplyDraft& d, const RegionLayout& layout) = 0;
  // The stubs the .eh_frame at d.stubs_unwind describes. libgcc takes the
  // registered object whose lowest pc is the nearest below a pc and
  // searches no other: the objects may not overlap.
  virtual arch::ReturnStubs described_stubs(const ApplyDraft& d) const = 0;
  // Switches to the new code. Throws if it did not: the process is back on
  // the old code, except for TransitionStuck.
  virtual void forward(ForwardContext& c) = 0;

  // Revert, from the record alone:
  // Checks the patch can go back this way, before anything is written;
  // throws graft::Error with the reason if not.
  virtual void prepare_backward(TargetSession& session, const PatchRecord& record) = 0;
  // Switches back to the old code and removes the patch's region.
  virtual void backward(BackwardContext& c) = 0;
};

// The method an apply of `functions` functions under `model` uses.
SwitchKind apply_switch_kind(Model model, bool cumulative, size_t functions);
// The method a revert under `model` of a patch with `record` uses.
SwitchKind revert_switch_kind(Model model, const PatchRecord& record);
std::unique_ptr<SwitchMethod> make_switch_method(SwitchKind kind);

// The record of a function put back to its original code: what a patch
// writes there is the original bytes (the kernel's "nop" function).
FunctionRecord restored_record(const FunctionRecord& f, const Bytes& original);

// The rw pages for the unwind information of `exit_stubs` exit stubs and,
// if `stop_stub`, the stop model's return trap.
uint64_t stubs_unwind_size(uint32_t exit_stubs, bool stop_stub);

// Shared by the gated methods: the first instructions of `code` (the bytes
// from the site on) must be able to run from a gate, and no branch of the
// function (`whole` at `address`, and its cold parts) may land among them.
void check_displaceable(const Bytes& code, const Bytes& whole, uint64_t address, uint64_t site,
                        const std::vector<AddressRange>& cold, const std::string& name,
                        const MemoryReader& memory);

}  // namespace graft
