#include "loader/revert_under_stop.h"

#include <algorithm>

#include "arch/x86_64/jump.h"
#include "arch/x86_64/registers.h"
#include "common/error.h"
#include "common/fault_point.h"
#include "consistency/per_thread_model.h"
#include "consistency/stop_model.h"
#include "consistency/trap_guard.h"
#include "consistency/transition_area.h"
#include "loader/code_slack.h"
#include "loader/quiescent_runtime.h"
#include "loader/region.h"
#include "loader/unwind_registration.h"
#include "process/remote_syscalls.h"
#include "runtime/transition_abi.h"

namespace graft {

namespace {

// An entry that a per-thread transition left midway through a write: its
// int3, then the tail of one of the jumps the transition writes there.
bool midway_int3(const Bytes& now, const FunctionRecord& f, const FunctionRecord* below) {
  if (now.size() != arch::kRedirectSize || now[0] != arch::kBreakpoint) return false;
  auto tail_of = [&](const Bytes& b) {
    return b.size() == now.size() && std::equal(now.begin() + 1, now.end(), b.begin() + 1);
  };
  return tail_of(f.original) || tail_of(f.gate_redirect) || tail_of(f.redirect) ||
         (below && tail_of(below->redirect));
}

// An abandoned per-thread transition may have left int3s at entries (graft
// died between the writes of one). Each becomes the whole jump to its gate
// first, all threads stopped, none between the instructions the jump
// displaces (where the tail goes) nor with the int3's SIGTRAP to come (its
// pc is one past the int3): the gates send every thread to its universe's
// code, so this changes nothing for any thread. The entries then leave the
// gates as usual. (Restored straight to the old bytes instead, the entries
// would have to wait for no thread to be in a gate, and with every call
// trapping to the handler and the gate, some always is.)
void complete_int3s(Tracer& tracer, const ProcessMemory& memory, const std::vector<PatchRecord>& records,
                    const PatchRecord& rec, const OperationOptions& options) {
  SwitchPlan plan;
  for (const auto& f : rec.functions) {
    Bytes now = memory.read({f.site}, f.redirect.size());
    if (!midway_int3(now, f, newest_redirect(records, f.address, &rec))) continue;
    plan.busy.push_back({{f.site + 1, f.displaced - 1}, "the entry of `" + f.symbol + "'"});
    plan.writes.push_back({f.symbol, {f.site}, now, f.gate_redirect});
  }
  if (plan.writes.empty()) return;
  StopOptions stop;
  stop.timeout_s = options.timeout_s;
  stop.detach_after = false;
  stop.pc_only = true;
  stop.serve_events_between_tries = false;
  SwitchResult s;
  run_stop_model(tracer, memory, plan, stop, [] {}, s);
}

// A per-thread patch goes back through its gates like a switch-gated one,
// with the transition table in place of the flag: every thread's universe
// byte, then the goal, to old. Killed midway, each thread runs all old or
// all new code (per-thread consistency, as during a transition).
std::vector<SiteWrite> universes_to_old(const ProcessMemory& memory, const PatchRecord& rec) {
  const TransitionRecord& t = rec.transition;
  uint64_t table = TransitionAreaLayout::of(t.area, t.capacity, t.report_capacity).table();
  std::vector<graft_universe_entry> entries(t.capacity);
  if (!memory.try_read({table}, entries.data(), entries.size() * sizeof entries[0]))
    fail("process {}: the transition table of patch {} is unreadable", memory.pid(), rec.label());
  std::vector<SiteWrite> out;
  auto flip = [&](uint64_t at, uint8_t now) {
    if (now == GRAFT_UNIVERSE_OLD) return;
    // Not checked (a thread may move itself in graft_quiescent() until the
    // stop) and not undone (with the entries back, the universes are moot).
    SiteWrite w{"a thread's universe", {at}, {}, {GRAFT_UNIVERSE_OLD}};
    w.activation = true;
    out.push_back(w);
  };
  for (uint32_t i = 0; i < t.capacity; ++i)
    if (entries[i].thread_pointer != 0)
      flip(table + uint64_t(i) * sizeof entries[0] + offsetof(graft_universe_entry, universe),
           entries[i].universe);
  uint8_t goal = 0;
  uint64_t goal_at = t.area + offsetof(graft_transition_header, goal);
  if (!memory.try_read({goal_at}, &goal, 1))
    fail("process {}: the transition area of patch {} is unreadable", memory.pid(), rec.label());
  flip(goal_at, goal);
  return out;
}

}  // namespace

void unload_patch(TargetSession& session, const PatchRecord& rec, const OperationOptions& options, SwitchResult& s,
                  size_t* redirected, const std::function<void()>& after_switch, size_t* returns_restored) {
  Tracer& tracer = session.tracer();
  const ProcessMemory& memory = session.memory();
  const std::vector<PatchRecord>& records = session.records();
  if (rec.per_thread()) {
    // A transition abandoned while threads could move themselves leaves
    // graft_quiescent() armed with an area about to be unmapped.
    disarm_abandoned(tracer, find_quiescent_runtime(session, rec.build_id), memory, rec.transition.area,
                     options.timeout_s);
    complete_int3s(tracer, memory, records, rec, options);
    // A thread whose return still leads to an exit stub in the region gets
    // its own return address back before the region may go.
    if (rec.transition.return_stub_count) {
      tracer.stop_all();
      size_t n = restore_return_addresses(tracer, memory, rec.transition.return_stubs,
                                          static_cast<uint32_t>(rec.transition.return_stub_count));
      if (returns_restored) *returns_restored = n;
      tracer.resume_all();
    }
  }
  SwitchPlan plan;
  if (auto stub = stop_stub_address(rec)) {
    // A graft that died while a thread ran alone left its return leading
    // to the stub in the region: put back before the region may go.
    if (release_stop_stub(tracer, memory, *stub) && returns_restored) ++*returns_restored;
    plan.stop_stub = *stub;
    // Described and registered by the apply of a stop-model region (a
    // per-thread region's table covers its exit stubs only).
    if (!rec.per_thread() && stub_unwind_registered(memory, rec)) plan.stop_stub_unwind.clear();
  }
  plan.busy.push_back({rec.code(), "the code of patch " + rec.label()});
  if (rec.has_gates())
    plan.busy.push_back({{rec.transition.gates, rec.transition.gates_size}, "the gates of patch " + rec.label()});
  // With switch gates the functions switch back together: every entry to
  // its switch gate, the flag to old (one byte), every entry to its old
  // bytes; killed at any point, all run the new code or all the old.
  std::vector<SiteWrite> to_gates, to_old;
  for (const auto& f : rec.functions) {
    // Only an entry that holds this patch's jump is written; a patch lower
    // in the stack leaves the entry to the one above it.
    Bytes now = memory.read({f.site}, f.redirect.size());
    const FunctionRecord* below = newest_redirect(records, f.address, &rec);
    Bytes old = below ? below->redirect : f.original;
    // An abandoned transition (or switch) leaves entries leading to the gates.
    bool to_gate = rec.has_gates() && now == f.gate_redirect;
    if (now != f.redirect && !to_gate) continue;
    // Put back to its original by a cumulative transition: nothing to undo
    // unless a replaced patch is still there to lead to.
    if (f.restores && now == old) continue;
    // Its entry holds the original: no thread may be between the
    // instructions the jump written back will cover.
    if (f.restores && now == f.redirect)
      plan.busy.push_back({{f.site + 1, arch::kRedirectSize - 1}, "the entry of `" + f.symbol + "'"});
    if ((rec.switch_gates() || rec.per_thread()) && !to_gate) {
      to_gates.push_back({f.symbol, {f.site}, now, f.gate_redirect});
      to_old.push_back({f.symbol, {f.site}, f.gate_redirect, old});
    } else {
      to_old.push_back({f.symbol, {f.site}, now, old});
    }
  }
  if (redirected) *redirected = to_old.size();
  plan.writes = std::move(to_gates);
  if (rec.switch_gates() && !to_old.empty()) {
    uint8_t flag = 0;
    if (!memory.try_read({rec.transition.switch_flag}, &flag, 1))
      fail("process {}: the switch flag of patch {} is unreadable", memory.pid(), rec.label());
    if (flag != 0) {
      SiteWrite deactivate{"the switch flag", {rec.transition.switch_flag}, {flag}, {0}};
      deactivate.activation = true;
      plan.writes.push_back(deactivate);
    }
  }
  if (rec.per_thread() && !to_old.empty()) {
    auto flips = universes_to_old(memory, rec);
    plan.writes.insert(plan.writes.end(), flips.begin(), flips.end());
  }
  plan.writes.insert(plan.writes.end(), to_old.begin(), to_old.end());

  StopOptions stop;
  stop.timeout_s = options.timeout_s;
  stop.detach_after = false;
  stop.serve_events_between_tries = !rec.per_thread();
  // Marked before the first write: a revert interrupted midway is then
  // completed by the next graft, never mistaken for an active patch.
  bool marked = false;
  stop.before_writes = [&] {
    if (rec.state == RecordState::Reverting) return;
    write_record_state(memory, rec, RecordState::Reverting);
    marked = true;
  };
  try {
    run_stop_model(tracer, memory, plan, stop, [] { fault_point("reverted"); }, s);
  } catch (...) {
    // The stop model undid its writes: the patch is as it was.
    if (marked) write_record_state(memory, rec, rec.state);
    throw;
  }
  if (after_switch) after_switch();
  // No int3 of the transition is left: graft's SIGTRAP handler goes before
  // the region that holds it.
  if (rec.per_thread() && rec.transition.trap_handler && rec.state != RecordState::Active) {
    tracer.stop_all();
    {
      RemoteSyscalls sys(tracer, memory, session.maps());
      remove_trap_handler(sys, memory, rec.transition.trap_handler);
    }
    tracer.resume_all();
  }
  // No thread is in the patch's code and nothing leads there any more.
  deregister_unwind_info(session, rec, options.timeout_s);
  remove_region(session, rec.region_start, rec.region_size);
  fault_point("region-removed");
}

}  // namespace graft
