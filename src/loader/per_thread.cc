#include "loader/per_thread.h"

#include <algorithm>
#include <cstdio>

#include "arch/x86_64/displaced.h"
#include "arch/x86_64/gate.h"
#include "arch/x86_64/jump.h"
#include "common/interrupt.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "common/fault_point.h"
#include "loader/quiescent_runtime.h"
#include "loader/region.h"
#include "loader/unwind_registration.h"

namespace graft {

namespace {

std::string name_of(const FunctionRecord& f) { return f.demangled.empty() ? f.symbol : f.demangled; }

}  // namespace

TransitionPlan reverse_transition_plan(TargetSession& session, const PatchRecord& rec) {
  pid_t pid = session.pid();
  const ProcessMemory& memory = session.memory();
  const std::vector<PatchRecord>& records = session.records();
  const TransitionRecord& t = rec.transition;
  if (!rec.per_thread())
    fail("process {}: patch {} was applied with --model {}: it has no gates to go back through; "
         "revert it with --model stop",
         pid, rec.label(), rec.model);
  if (rec.state != RecordState::Active)
    fail("process {}: patch {} is {}; only an applied patch can be reverted per thread", pid, rec.label(),
         state_name(rec.state));
  TransitionPlan plan;
  plan.area = TransitionAreaLayout::of(t.area, t.capacity, t.report_capacity);
  if (t.capacity == 0 || (t.capacity & (t.capacity - 1)) != 0 || plan.area.size != t.area_size)
    fail("process {}: the transition area of patch {} is not laid out as graft lays it out", pid, rec.label());
  // The table stays at most half full (TransitionArea::initialize); threads
  // created during the transition may take the rest.
  size_t threads = list_threads(pid).size();
  if (threads * 2 > t.capacity)
    fail("process {} has {} threads; the transition table of patch {} (sized when it was applied) holds "
         "{}: revert it with --model stop",
         pid, threads, rec.label(), t.capacity / 2);

  for (const auto& f : rec.functions) {
    std::string name = name_of(f);
    Bytes now = memory.read({f.site}, f.redirect.size());
    if (now == f.gate_redirect)
      fail("process {}: the entry of `{}' leads to the gate of patch {}, which is applied; revert it "
           "with --model stop",
           pid, name, rec.label());
    // A patch applied later owns the entry; this one's code is reached only
    // through that patch's old path, and is checked as the patch's code.
    if (now != f.redirect) continue;
    const FunctionRecord* below = newest_redirect(records, f.address, &rec);
    Bytes old = below ? below->redirect : f.original;
    // Put back to its original by a cumulative transition whose graft died
    // before it settled the record (apply_patch.cc, settle_replace).
    if (f.restores) {
      if (now == old) continue;
      fail("process {}: patch {} put `{}' back to its original code over a patch still listed; revert "
           "it with --model stop",
           pid, rec.label(), name);
    }

    Bytes gate = arch::gate_code({f.gate, plan.area.table(), plan.area.capacity, plan.area.goal_byte(),
                                  f.replacement, f.old_path});
    if (memory.read({f.gate}, gate.size()) != gate)
      fail("process {}: the gate of `{}' in patch {} is not the code graft wrote there", pid, name,
           rec.label());
    // The old path must run what the entry gets back.
    uint64_t site_end = f.address + f.size;
    if (f.site < f.address || f.site >= site_end || old.size() != f.redirect.size())
      fail("process {}: the record of patch {} is inconsistent for `{}'", pid, rec.label(), name);
    Bytes code = memory.read({f.site}, std::min<uint64_t>(site_end - f.site, 64));
    std::copy(old.begin(), old.end(), code.begin());
    auto displaced = arch::relocate_displaced(code, f.site, f.old_path, name);
    if (displaced.length != f.displaced ||
        memory.read({f.old_path}, displaced.old_path.size()) != displaced.old_path)
      fail("process {}: the old path of `{}' in patch {} does not run what its entry would get back{}; "
           "revert it with --model stop",
           pid, name, rec.label(), below ? "" : " (a patch below it was reverted since?)");

    plan.to_gates.push_back({name, {f.site}, f.redirect, f.gate_redirect});
    plan.to_new.push_back({name, {f.site}, f.gate_redirect, f.redirect});
    plan.to_old.push_back({name, {f.site}, f.gate_redirect, old});
    plan.entries.push_back({f.site, f.gate, f.old_path, f.replacement, gate});
    plan.gate_of_site[f.site] = f.gate;
    plan.old_code.push_back({{f.address, f.size}, "function `" + name + "'"});
    for (const auto& c : f.cold_parts) plan.old_code.push_back({c, "function `" + name + "' (cold part)"});
    if (below)
      plan.old_code.push_back({{below->replacement, std::max<uint64_t>(below->replacement_size, 1)},
                               "`" + name + "' of an earlier patch"});
  }
  plan.new_code = {{rec.code(), "the code of patch " + rec.label()}};
  plan.gates = {{t.gates, t.gates_size}, "the gates of patch " + rec.label()};
  plan.trap_handler = t.trap_handler;
  plan.return_stubs = t.return_stubs;
  plan.return_stub_count = static_cast<uint32_t>(t.return_stub_count);
  // Registered by the apply, for as long as the gates exist.
  if (stub_unwind_registered(memory, rec)) plan.return_stubs_unwind.clear();
  plan.maps = session.maps();
  QuiescentRuntime rt = find_quiescent_runtime(session, rec.build_id);
  plan.quiescent_area = rt.area;
  plan.quiescent_armed = rt.armed;
  plan.quiescent_users = rt.users;
  return plan;
}

void settle_replace(const ProcessMemory& memory, PatchRecord& rec) {
  pid_t pid = memory.pid();
  const TransitionRecord& t = rec.transition;
  AddressRange gates{t.gates, t.gates_size};
  auto area = TransitionAreaLayout::of(t.area, t.capacity, t.report_capacity);
  std::vector<FunctionRecord> own;
  for (auto& f : rec.functions) {
    if (rec.per_thread()) {
      // The record comes from the target: write only over a gate graft
      // wrote, and inside the gates.
      Bytes gate = arch::gate_code({f.gate, area.table(), area.capacity, area.goal_byte(), f.replacement,
                                    f.old_path});
      if (memory.read({f.gate}, gate.size()) != gate)
        fail("process {}: the gate of `{}' in patch {} is not the code graft wrote there", pid, name_of(f),
             rec.label());
      // Every old path runs the original from now on, those of the
      // functions put back too: the gates stay (a thread that entered one
      // before the last entry writes may still be inside, and a later
      // transition of this area, the revert, sends it by its table), and
      // the code the old paths led to is about to go.
      Bytes code = memory.read({f.site}, std::min<uint64_t>(f.address + f.size - f.site, 64));
      std::copy(f.original.begin(), f.original.end(), code.begin());
      auto rebased = arch::relocate_displaced(code, f.site, f.old_path, name_of(f));
      if (!gates.contains(f.old_path) || rebased.old_path.size() > gates.start + gates.size - f.old_path)
        fail("process {}: the old path of `{}' in patch {} lies outside its gates", pid, name_of(f), rec.label());
      memory.write({f.old_path}, rebased.old_path);
      f.displaced = rebased.length;
    }
    if (!f.restores) own.push_back(f);
  }
  rec.functions = std::move(own);
  rec.settled = true;
  // Within the record's own pages: before the transition area or the gates
  // (per thread), before the code (stop model).
  uint64_t room = (rec.per_thread() ? std::min(t.area, t.gates) : rec.image_base) - rec.region_start;
  if (rec.stub_unwind.object) room = std::min(room, rec.stub_unwind.object - rec.region_start);
  Bytes encoded = encode_record(rec);
  if (encoded.size() > room)
    fail("process {}: the settled record of patch {} would not fit its pages", pid, rec.label());
  memory.write({rec.region_start}, encoded);
  fault_point("record-settled");
}

bool unsettled(const PatchRecord& rec) { return rec.state == RecordState::Active && !rec.settled; }

RecordState record_state(TransitionPhase phase) {
  switch (phase) {
    case TransitionPhase::applying: return RecordState::Applying;
    case TransitionPhase::unapplying: return RecordState::Unapplying;
    case TransitionPhase::applied: return RecordState::Active;
  }
  return RecordState::Active;
}

void record_transition(const TransitionResult& t, OperationResult& result) {
  result.threads = t.threads;
  result.transition_ms = t.transition_ms;
  result.stalls = t.stalls_us.size();
  result.stall_max_us = t.stalls_us.empty() ? 0 : *std::max_element(t.stalls_us.begin(), t.stalls_us.end());
  result.stall_p99_us = percentile(t.stalls_us, 99);
  result.forced = t.forced;
  result.rewound = t.rewound;
  result.returns_rewritten = t.returns_rewritten;
  result.returns_passed = t.returns_passed;
  result.returns_restored = t.returns_restored;
  result.return_to_end_ms = t.return_to_end_ms;
  if (!t.returns_refused.empty())
    result.notes.push_back("return addresses not rewritten (threads inside replaced code wait for the "
                           "other checks): " + t.returns_refused);
  result.breakpoint_hits = t.breakpoint_hits;
}

TransitionOptions transition_options(const OperationOptions& options, const ProcessMemory& memory,
                                     const PatchRecord& rec) {
  TransitionOptions o;
  o.kind = options.model.value_or(rec.model);
  if (!per_thread(o.kind)) fail("process {}: a per-thread transition needs --model hybrid or lazy", memory.pid());
  o.force = options.force;
  o.timeout_s = options.timeout_s;
  o.report_after_s = options.report_after_s;
  o.label = fmt::format("pid {}", memory.pid());
  o.progress = options.progress;
  o.set_state = [&memory, &rec](TransitionPhase p) { write_record_state(memory, rec, record_state(p)); };
  return o;
}

void warn_forced(const OperationOptions& options, pid_t pid, size_t forced, const char* code) {
  if (!forced || !options.progress) return;
  options.progress(fmt::format("warning: pid {}: {} thread(s) were moved to the {} code without a stack "
                               "check (--force); if one of them was inside a replaced function, the "
                               "process may misbehave",
                               pid, forced, code));
}

void revert_per_thread(TargetSession& session, const PatchRecord& rec, const TransitionPlan& plan,
                       const OperationOptions& options, OperationResult& result,
                       const std::function<void()>& after_switch,
                       const std::function<void()>& turned_back) {
  TransitionOptions o = transition_options(options, session.memory(), rec);
  TransitionResult t;
  try {
    run_per_thread_revert(session.tracer(), session.memory(), plan, o, t);
  } catch (...) {
    record_transition(t, result);
    throw;
  }
  record_transition(t, result);
  if (!t.completed) {
    result.rolled_back = true;
    turned_back();
    fail(interrupt_signal() ? ErrorCode::interrupted : ErrorCode::busy,
         "{}; the revert turned back: every thread runs the new code again and the patch stays applied",
         t.reason);
  }
  warn_forced(options, session.pid(), t.forced, "old");
  fault_point("reverted");
  after_switch();
  // No thread is in the patch's code or its gates, and nothing leads there.
  deregister_unwind_info(session, rec, options.timeout_s);
  remove_region(session, rec.region_start, rec.region_size);
  fault_point("region-removed");
}

}  // namespace graft
