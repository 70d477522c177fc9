// The stop methods: direct, and gated by a flag byte.
#include "arch/x86_64/jump.h"
#include "common/error.h"
#include "common/fault_point.h"
#include "consistency/stop_model.h"
#include "loader/code_slack.h"
#include "loader/revert_under_stop.h"
#include "loader/switch_methods.h"
#include "process/proc_status.h"

namespace graft {

namespace {

// Runs a stop-model switch and reports its figures, whether it succeeded
// or not.
void reported(OperationResult& result, const std::function<void(SwitchResult&)>& run) {
  SwitchResult s;
  auto report = [&] {
    result.pause_ms = s.pause_ms;
    result.max_pause_ms = s.max_pause_ms;
    result.retries = s.retries;
    result.run_out = s.threads_run_out;
  };
  try {
    run(s);
  } catch (...) {
    report();
    throw;
  }
  report();
}

}  // namespace

void DirectStopSwitch::plan_restore(ApplyDraft& d, const FunctionRecord& f, const Bytes& original,
                                    const Bytes& now, const MemoryReader&) const {
  d.plan.writes.push_back({f.symbol, {f.site}, now, original});
  d.record.functions.push_back(restored_record(f, original));
}

void DirectStopSwitch::lay_out(ApplyDraft&, RegionLayout& layout, size_t) {
  layout.transition_offset = layout.image_offset;
  layout.transition_size = stubs_unwind_size(0, true);
  layout.image_offset += layout.transition_size;
}

void DirectStopSwitch::place(ApplyDraft& d, const RegionLayout& layout) {
  d.stubs_unwind = layout.address + layout.transition_offset;
}

arch::ReturnStubs DirectStopSwitch::described_stubs(const ApplyDraft& d) const {
  return {0, 0, stop_stub_address(d.record).value_or(0)};
}

void DirectStopSwitch::forward(ForwardContext& c) {
  const ProcessMemory& memory = c.session.memory();
  StopOptions stop;
  stop.timeout_s = c.options.timeout_s;
  stop.detach_after = false;
  if (auto stub = stop_stub_address(c.draft.record)) c.draft.plan.stop_stub = *stub;
  c.draft.plan.stop_stub_unwind = c.draft.stubs_unwind_missing;
  reported(c.result, [&](SwitchResult& s) {
    run_stop_model(c.session.tracer(), memory, c.draft.plan, stop, [&] {
      write_record_state(memory, c.draft.record, RecordState::Active);
      c.mark_replaced();
      fault_point("applied");
    }, s);
  });
  if (!process_alive(c.session.pid())) fail("process {} exited during the apply", c.session.pid());
}

void DirectStopSwitch::backward(BackwardContext& c) {
  reported(c.result, [&](SwitchResult& s) { unload_patch(c.session, c.record, c.options, s, nullptr, c.after_switch); });
}

void GatedStopSwitch::check(const PlannedFunction& p, bool, const MemoryReader& memory) const {
  check_displaceable(p.current, p.whole, p.address, p.site, p.cold, p.name, memory);
}

void GatedStopSwitch::widen(PatchRecord& widest) const {
  widest.transition = {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT32_MAX, UINT32_MAX,
                       UINT64_MAX, UINT64_MAX, UINT64_MAX};
  widest.transition.return_stubs = widest.transition.return_stub_count = UINT64_MAX;
  for (auto& f : widest.functions) {
    f.gate = f.old_path = f.displaced = UINT64_MAX;
    f.gate_redirect = Bytes(arch::kRedirectSize);
  }
}

void GatedStopSwitch::lay_out(ApplyDraft& d, RegionLayout& layout, size_t threads) {
  DirectStopSwitch::lay_out(d, layout, threads);
  layout.gates_offset = layout.image_offset;
  layout.gates_size = page_round_up(kFlagArea + d.record.functions.size() * kSlot);
  layout.image_offset = layout.gates_offset + layout.gates_size;
}

void GatedStopSwitch::place(ApplyDraft& d, const RegionLayout& layout) {
  DirectStopSwitch::place(d, layout);
  uint64_t gates = layout.address + layout.gates_offset;
  d.record.transition = {};
  d.record.transition.gates = gates;
  d.record.transition.gates_size = layout.gates_size;
  d.record.transition.switch_flag = gates;  // the flag's byte, then the gates
}

Bytes GatedStopSwitch::gates(ApplyDraft& d, const RegionLayout& layout) {
  Bytes out(layout.gates_size, arch::kBreakpoint);
  out[0] = 0;  // the flag: old
  uint64_t gates = d.record.transition.gates, flag = d.record.transition.switch_flag;
  std::vector<SiteWrite> to_gates, to_new;
  for (size_t i = 0; i < d.record.functions.size(); ++i) {
    const auto& fr = d.record.functions[i];
    place_gate(d, i, out, kFlagArea + i * kSlot, arch::kSwitchGateSize, [&](uint64_t gate, uint64_t old_path) {
      return arch::switch_gate_code(gate, flag, fr.replacement, old_path);
    });
    const SiteWrite& w = d.plan.writes[i];
    to_gates.push_back({w.function, w.site, w.expected, fr.gate_redirect});
    to_new.push_back({w.function, w.site, fr.gate_redirect, w.bytes});
  }
  d.plan.writes = std::move(to_gates);
  SiteWrite activate{"the switch flag", {flag}, {0}, {1}};
  activate.activation = true;
  d.plan.writes.push_back(activate);
  d.plan.writes.insert(d.plan.writes.end(), to_new.begin(), to_new.end());
  d.plan.busy.push_back({{gates, layout.gates_size}, "the switch gates of patch " + d.record.label()});
  return out;
}

void GatedStopSwitch::forward(ForwardContext& c) {
  c.session.memory().write({c.draft.record.transition.gates}, c.gates);
  DirectStopSwitch::forward(c);
}

arch::DisplacedCode place_gate(ApplyDraft& d, size_t i, Bytes& out, uint64_t slot, size_t code_room,
                               const std::function<Bytes(uint64_t gate, uint64_t old_path)>& make_code) {
  auto& fr = d.record.functions[i];
  const std::string& name = d.planned[i].name;
  uint64_t gate = d.record.transition.gates + slot, old_path = gate + code_room;
  auto displaced = arch::relocate_displaced(d.planned[i].current, fr.site, old_path, name);
  Bytes code = make_code(gate, old_path);
  std::copy(code.begin(), code.end(), out.begin() + slot);
  std::copy(displaced.old_path.begin(), displaced.old_path.end(), out.begin() + slot + code_room);
  auto to_gate = arch::redirect_bytes(fr.site, gate);
  if (!to_gate) fail("process {}: gate out of jump range of `{}'", d.pid, name);
  fr.gate = gate;
  fr.old_path = old_path;
  fr.displaced = displaced.length;
  fr.gate_redirect = *to_gate;
  return displaced;
}

}  // namespace graft
