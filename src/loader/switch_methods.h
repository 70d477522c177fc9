// The three switch methods (switch_method.h), declared for the factory and
// for their unit tests (tests/unit/switch_method_test.cc).
#pragma once
#include <cstdint>
#include <functional>

#include "arch/x86_64/displaced.h"
#include "arch/x86_64/gate.h"
#include "consistency/per_thread_model.h"
#include "consistency/transition_area.h"
#include "loader/switch_method.h"

namespace graft {

// Every thread stopped, each entry written in turn.
class DirectStopSwitch : public SwitchMethod {
 public:
  SwitchKind kind() const override { return SwitchKind::direct_stop; }
  void check(const PlannedFunction&, bool, const MemoryReader&) const override {}
  void plan_restore(ApplyDraft& d, const FunctionRecord& f, const Bytes& original, const Bytes& now,
                    const MemoryReader& memory) const override;
  void widen(PatchRecord&) const override {}
  // The stop stub's unwind information, in rw pages of their own.
  void lay_out(ApplyDraft& d, RegionLayout& layout, size_t threads) override;
  void place(ApplyDraft& d, const RegionLayout& layout) override;
  Bytes gates(ApplyDraft&, const RegionLayout&) override { return {}; }
  // The return trap in the slack after the patch's code.
  arch::ReturnStubs described_stubs(const ApplyDraft& d) const override;
  void forward(ForwardContext& c) override;
  void prepare_backward(TargetSession&, const PatchRecord&) override {}
  void backward(BackwardContext& c) override;
};

// Every thread stopped; the entries go to switch gates, then one flag byte
// switches them all (a flag byte, then per function a gate and its old
// path).
class GatedStopSwitch : public DirectStopSwitch {
 public:
  static constexpr uint64_t kFlagArea = 64;
  static constexpr uint64_t kSlot = arch::kSwitchGateSize + arch::kMaxOldPathSize;

  SwitchKind kind() const override { return SwitchKind::gated_stop; }
  void check(const PlannedFunction& p, bool rebased, const MemoryReader& memory) const override;
  void widen(PatchRecord& widest) const override;
  void lay_out(ApplyDraft& d, RegionLayout& layout, size_t threads) override;
  void place(ApplyDraft& d, const RegionLayout& layout) override;
  // The writes of the switch: every entry to its gate (the flag says old),
  // the flag to new, every entry to its replacement.
  Bytes gates(ApplyDraft& d, const RegionLayout& layout) override;
  void forward(ForwardContext& c) override;
};

// Gates that ask each thread's universe; threads move one by one.
class PerThreadSwitch : public SwitchMethod {
 public:
  // A gate and its old path; a function put back to its original also
  // has its new code after them.
  static constexpr uint64_t kSlot = arch::kMaxGateSize + 128;
  static constexpr uint64_t kRestoreSlot = kSlot + arch::kMaxOldPathSize;
  // Exit stubs: one per thread whose return graft rewrites, never reused
  // while the region lives (per_thread_model.cc).
  static constexpr uint32_t kMaxReturnStubs = 256;

  SwitchKind kind() const override { return SwitchKind::per_thread; }
  bool traces_clones() const override { return true; }
  void check(const PlannedFunction& p, bool rebased, const MemoryReader& memory) const override;
  void plan_restore(ApplyDraft& d, const FunctionRecord& f, const Bytes& original, const Bytes& now,
                    const MemoryReader& memory) const override;
  void widen(PatchRecord& widest) const override;
  // The transition area and the stubs' unwind information (rw), then the
  // gate pages: the gates, the exit stubs, then the SIGTRAP handler that
  // stands in for graft if it dies with an int3 in running code (the
  // entries' and the stubs').
  void lay_out(ApplyDraft& d, RegionLayout& layout, size_t threads) override;
  void place(ApplyDraft& d, const RegionLayout& layout) override;
  Bytes gates(ApplyDraft& d, const RegionLayout& layout) override;
  // The exit stubs, in the gates before the image; the stop stub, in the
  // slack after the patch's code, would make the table span the patch's own.
  arch::ReturnStubs described_stubs(const ApplyDraft& d) const override;
  void forward(ForwardContext& c) override;
  void prepare_backward(TargetSession& session, const PatchRecord& record) override;
  void backward(BackwardContext& c) override;

  // The transition planned by gates() or prepare_backward().
  const TransitionPlan& transition() const { return transition_; }

 private:
  TransitionAreaLayout area_;
  TransitionPlan transition_;  // read by the tracer's breakpoint handler: outlives it
  uint32_t stubs_ = 0;
  uint64_t stubs_offset_ = 0, slots_ = 0;  // in the gate pages
};

// Function i's gate at `slot` of the gate pages `out` (which start at the
// record's gates): the code `make_code(gate, old_path)` returns, at most
// `code_room` bytes, then its displaced instructions relocated to run
// there (the old path). Fills the function record's gate fields.
arch::DisplacedCode place_gate(ApplyDraft& d, size_t i, Bytes& out, uint64_t slot, size_t code_room,
                               const std::function<Bytes(uint64_t gate, uint64_t old_path)>& make_code);

}  // namespace graft
