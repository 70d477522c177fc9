// The per-thread method (hybrid, lazy): gates that ask each thread's
// universe, a transition area, exit stubs and graft's SIGTRAP handler.
#include "arch/x86_64/jump.h"
#include "arch/x86_64/return_stub.h"
#include "arch/x86_64/trap_handler.h"
#include "common/error.h"
#include "common/fault_point.h"
#include "common/interrupt.h"
#include "loader/per_thread.h"
#include "loader/quiescent_runtime.h"
#include "loader/switch_methods.h"

namespace graft {

void PerThreadSwitch::check(const PlannedFunction& p, bool rebased, const MemoryReader& memory) const {
  check_displaceable(p.current, p.whole, p.address, p.site, p.cold, p.name, memory);
  // A cumulative patch's old paths are rebased on the original code once
  // the patches it replaces are gone (settle_replace).
  if (p.below && rebased) check_displaceable(p.original_code, p.whole, p.address, p.site, p.cold, p.name, memory);
}

// A function put back to its original code: its entry leads to a gate like
// the patch's own, whose old path runs the replaced patch's jump and whose
// new code is the original's first instructions relocated into the gate
// pages, then the rest of the original.
void PerThreadSwitch::plan_restore(ApplyDraft& d, const FunctionRecord& f, const Bytes& original, const Bytes&,
                                   const MemoryReader& memory) const {
  PlannedFunction p = plan_restored_function(f, original, memory);
  std::string name = p.name;
  check_displaceable(p.current, p.whole, f.address, f.site, f.cold_parts, name, memory);
  check_displaceable(p.original_code, p.whole, f.address, f.site, f.cold_parts, name, memory);
  d.planned.push_back(std::move(p));
  d.record.functions.push_back(restored_record(f, original));
  d.restored_code.push_back({{f.address, f.size}, "function `" + name + "' (put back to its original)"});
  for (const auto& c : f.cold_parts)
    d.restored_code.push_back({c, "function `" + name + "' (put back to its original; cold part)"});
}

void PerThreadSwitch::widen(PatchRecord& widest) const {
  GatedStopSwitch().widen(widest);  // the same fields, at most as wide
}

void PerThreadSwitch::lay_out(ApplyDraft& d, RegionLayout& layout, size_t threads) {
  area_ = TransitionAreaLayout::for_threads(threads);
  stubs_ = std::min<uint32_t>(area_.capacity, kMaxReturnStubs);
  layout.transition_offset = layout.image_offset;
  layout.transition_size = area_.size + stubs_unwind_size(stubs_, false);
  layout.gates_offset = layout.transition_offset + layout.transition_size;
  uint64_t slots = 0;
  for (size_t i = 0; i < d.record.functions.size(); ++i) {
    d.planned[i].slot = slots;
    slots += d.record.functions[i].restores ? kRestoreSlot : kSlot;
  }
  // The first stub's FDE covers the byte before it (stub_unwind_info.h): a
  // gap, so that no gate code lies there.
  stubs_offset_ = slots + 16;
  slots = stubs_offset_ + uint64_t(stubs_) * arch::kReturnStubSize;
  slots_ = slots;
  layout.gates_size = page_round_up(slots + arch::trap_handler_size(d.record.functions.size() + stubs_));
  layout.image_offset = layout.gates_offset + layout.gates_size;
}

void PerThreadSwitch::place(ApplyDraft& d, const RegionLayout& layout) {
  area_.address = layout.address + layout.transition_offset;
  uint64_t gates = layout.address + layout.gates_offset;
  d.record.transition = {area_.address, area_.size, gates, layout.gates_size, area_.capacity,
                         area_.report_capacity, gates + slots_, d.record.functions.size() + stubs_};
  d.record.transition.return_stubs = gates + stubs_offset_;
  d.record.transition.return_stub_count = stubs_;
  d.stubs_unwind = area_.address + area_.size;
}

arch::ReturnStubs PerThreadSwitch::described_stubs(const ApplyDraft& d) const {
  return {d.record.transition.return_stubs, stubs_, 0};
}

Bytes PerThreadSwitch::gates(ApplyDraft& d, const RegionLayout& layout) {
  PatchRecord& record = d.record;
  Bytes out(layout.gates_size, arch::kBreakpoint);  // padding traps
  uint64_t gates = record.transition.gates;
  for (size_t i = 0; i < record.functions.size(); ++i) {
    auto& fr = record.functions[i];
    const PlannedFunction& p = d.planned[i];
    const std::string& name = p.name;
    if (fr.restores) {
      uint64_t at = gates + p.slot + kSlot;
      auto restored = arch::relocate_displaced(p.original_code, fr.site, at, name);
      std::copy(restored.old_path.begin(), restored.old_path.end(), out.begin() + p.slot + kSlot);
      fr.replacement = at;
      fr.replacement_size = restored.old_path.size();
    }
    Bytes code;
    auto displaced = place_gate(d, i, out, p.slot, arch::kMaxGateSize, [&](uint64_t gate, uint64_t old_path) {
      // settle_replace() will relocate the original there: checked now,
      // before anything is written (RIP-relative reach from the gates).
      if (d.replaces) arch::relocate_displaced(p.original_code, fr.site, old_path, name);
      code = arch::gate_code({gate, area_.table(), area_.capacity, area_.goal_byte(), fr.replacement, old_path});
      return code;
    });
    transition_.entries.push_back({fr.site, fr.gate, fr.old_path, fr.replacement, code});
    Bytes now(p.current.begin(), p.current.begin() + arch::kRedirectSize);
    transition_.to_gates.push_back({name, {fr.site}, now, fr.gate_redirect});
    transition_.to_new.push_back({name, {fr.site}, fr.gate_redirect, fr.redirect});
    transition_.to_old.push_back({name, {fr.site}, fr.gate_redirect, now});
    for (size_t k = 0; k < displaced.boundaries.size(); ++k)
      transition_.interior[fr.site + displaced.boundaries[k]] = fr.old_path + displaced.old_path_offsets[k];
    transition_.gate_of_site[fr.site] = fr.gate;
  }
  std::vector<arch::TrapSite> traps;
  for (const auto& [site, gate] : transition_.gate_of_site) traps.push_back({site, gate});
  // An exit stub's int3 leads on to the stub's own code (arch/x86_64/return_stub.h).
  for (uint32_t i = 0; i < stubs_; ++i) {
    uint64_t stub = record.transition.return_stubs + uint64_t(i) * arch::kReturnStubSize;
    traps.push_back({stub, stub + 1});
  }
  transition_.return_stubs = record.transition.return_stubs;
  transition_.return_stub_count = stubs_;
  Bytes handler = arch::trap_handler_block(record.transition.trap_handler, traps);
  std::copy(handler.begin(), handler.end(), out.begin() + (record.transition.trap_handler - gates));
  transition_.trap_handler = record.transition.trap_handler;
  transition_.old_code = d.plan.busy;
  transition_.new_code = {{record.code(), "the code of patch " + record.label()}};
  transition_.new_code.insert(transition_.new_code.end(), d.restored_code.begin(), d.restored_code.end());
  transition_.gates = {{gates, layout.gates_size}, "the gates of patch " + record.label()};
  transition_.area = area_;
  return out;
}

void PerThreadSwitch::forward(ForwardContext& c) {
  const ProcessMemory& memory = c.session.memory();
  memory.write({c.draft.record.transition.gates}, c.gates);
  transition_.return_stubs_unwind = c.draft.stubs_unwind_missing;
  transition_.maps = c.session.maps();
  // graft_quiescent() of the process's libgraft-rt, if it maps one.
  QuiescentRuntime rt = find_quiescent_runtime(c.session, c.target);
  transition_.quiescent_area = rt.area;
  transition_.quiescent_armed = rt.armed;
  transition_.quiescent_users = rt.users;

  TransitionOptions o = transition_options(c.options, memory, c.draft.record);
  // The replaced patches are marked for removal right after this one is
  // marked applied, as under the stop methods (killed in between, recovery
  // marks them: see recovery.cc).
  if (c.draft.replaces)
    o.set_state = [&c, mark = o.set_state](TransitionPhase p) {
      mark(p);
      if (p != TransitionPhase::applied) return;
      c.mark_replaced();
      fault_point("replaced");
    };
  TransitionResult t;
  try {
    run_per_thread_apply(c.session.tracer(), memory, transition_, o, t);
  } catch (...) {
    record_transition(t, c.result);
    throw;
  }
  record_transition(t, c.result);
  if (!t.completed) {
    c.result.rolled_back = true;
    fail(interrupt_signal() ? ErrorCode::interrupted : ErrorCode::busy,
         "{}; rolled back: every thread runs the old code again", t.reason);
  }
  warn_forced(c.options, c.session.pid(), t.forced, "new");
}

void PerThreadSwitch::prepare_backward(TargetSession& session, const PatchRecord& record) {
  transition_ = reverse_transition_plan(session, record);
}

void PerThreadSwitch::backward(BackwardContext& c) {
  revert_per_thread(c.session, c.record, transition_, c.options, c.result, c.after_switch, c.turned_back);
}

}  // namespace graft
