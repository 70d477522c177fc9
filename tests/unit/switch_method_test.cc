// The three switch methods' planning against a fake process: which method
// an apply or a revert uses, the pages each lays out, the record fields it
// fills, its gates and the writes of its switch, and the checks that refuse
// a function it cannot switch.
#include <gtest/gtest.h>

#include "arch/x86_64/gate.h"
#include "arch/x86_64/jump.h"
#include "arch/x86_64/return_stub.h"
#include "arch/x86_64/trap_handler.h"
#include "common/address_range.h"
#include "common/error.h"
#include "fake_memory.h"
#include "loader/switch_methods.h"

namespace graft {
namespace {

constexpr uint64_t kBias = 0x555500000000;
constexpr uint64_t kRegion = 0x555500400000;  // the region, in jump reach of the functions
// push %rbp; mov %rsp,%rbp; mov $1,%eax; pop %rbp; ret; nop
const Bytes kCompute = {0x55, 0x48, 0x89, 0xe5, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x5d, 0xc3, 0x90};

FunctionReplacement replacement(const std::string& symbol, const Bytes& code, uint64_t address) {
  FunctionReplacement f;
  f.symbol = symbol;
  f.address = address;
  f.size = code.size();
  f.sha256 = sha256_hex(code);
  return f;
}

// What the apply driver plans before the method's passes: each function
// as the process holds it, its record and the write of its entry.
struct Fixture {
  FakeMemory memory;
  ApplyDraft draft;

  void add(const std::string& symbol, const Bytes& code, uint64_t address) {
    memory.put(kBias + address, code);
    PlannedFunction p = plan_function(replacement(symbol, code, address), kBias, memory, {}, 42, "/bin/demo");
    FunctionRecord fr;
    fr.symbol = symbol;
    fr.address = p.address;
    fr.size = code.size();
    fr.site = p.site;
    fr.original = p.original;
    fr.redirect = p.entry;
    draft.record.functions.push_back(fr);
    draft.plan.writes.push_back({symbol, {p.site}, p.entry, {}});
    draft.planned.push_back(std::move(p));
  }

  // The driver's part once the region is placed: each replacement's
  // address and the jump to it.
  void place_replacements(uint64_t image_base) {
    for (size_t i = 0; i < draft.record.functions.size(); ++i) {
      auto& fr = draft.record.functions[i];
      fr.replacement = image_base + 0x100 * i;
      fr.redirect = *arch::redirect_bytes(fr.site, fr.replacement);
      draft.plan.writes[i].bytes = fr.redirect;
    }
  }
};

TEST(SwitchMethod, ApplyAndRevertChooseTheirMethod) {
  EXPECT_EQ(apply_switch_kind(Model::stop, false, 1), SwitchKind::direct_stop);
  EXPECT_EQ(apply_switch_kind(Model::stop, false, 2), SwitchKind::gated_stop);
  // A cumulative patch puts other patches' entries back: no flag covers them.
  EXPECT_EQ(apply_switch_kind(Model::stop, true, 3), SwitchKind::direct_stop);
  EXPECT_EQ(apply_switch_kind(Model::hybrid, false, 1), SwitchKind::per_thread);
  EXPECT_EQ(apply_switch_kind(Model::lazy, true, 3), SwitchKind::per_thread);

  PatchRecord gated;
  gated.transition.gates = 0x1000;
  gated.transition.gates_size = 0x1000;
  gated.transition.switch_flag = 0x1000;
  EXPECT_EQ(revert_switch_kind(Model::stop, gated), SwitchKind::gated_stop);
  EXPECT_EQ(revert_switch_kind(Model::stop, PatchRecord{}), SwitchKind::direct_stop);
  EXPECT_EQ(revert_switch_kind(Model::hybrid, PatchRecord{}), SwitchKind::per_thread);
  for (auto kind : {SwitchKind::direct_stop, SwitchKind::gated_stop, SwitchKind::per_thread})
    EXPECT_EQ(make_switch_method(kind)->kind(), kind);
  EXPECT_TRUE(make_switch_method(SwitchKind::per_thread)->traces_clones());
  EXPECT_FALSE(make_switch_method(SwitchKind::gated_stop)->traces_clones());
}

TEST(SwitchMethod, DirectStopHasNoGatesAndWritesEntriesInTurn) {
  Fixture fx;
  fx.add("compute", kCompute, 0x1000);
  DirectStopSwitch m;
  RegionLayout layout;
  layout.image_offset = kPageSize;
  m.lay_out(fx.draft, layout, 4);
  // Only rw pages for the return trap's unwind information.
  EXPECT_EQ(layout.transition_offset, kPageSize);
  EXPECT_EQ(layout.transition_size, stubs_unwind_size(0, true));
  EXPECT_EQ(layout.image_offset, kPageSize + layout.transition_size);
  EXPECT_EQ(layout.gates_size, 0u);
  layout.address = kRegion;
  m.place(fx.draft, layout);
  EXPECT_EQ(fx.draft.stubs_unwind, kRegion + kPageSize);
  EXPECT_FALSE(fx.draft.record.per_thread());
  EXPECT_TRUE(m.gates(fx.draft, layout).empty());
  EXPECT_EQ(m.described_stubs(fx.draft).exit_count, 0u);
  EXPECT_NO_THROW(m.check(fx.draft.planned[0], false, fx.memory));

  // A function a cumulative patch puts back: one more write, and the
  // record lists it as restored.
  FunctionRecord old = fx.draft.record.functions[0];
  Bytes jump = *arch::redirect_bytes(old.site, kRegion);
  m.plan_restore(fx.draft, old, old.original, jump, fx.memory);
  ASSERT_EQ(fx.draft.plan.writes.size(), 2u);
  EXPECT_EQ(fx.draft.plan.writes[1].expected, jump);
  EXPECT_EQ(fx.draft.plan.writes[1].bytes, old.original);
  EXPECT_TRUE(fx.draft.record.functions.back().restores);
  EXPECT_EQ(fx.draft.record.functions.back().redirect, old.original);
}

TEST(SwitchMethod, GatedStopSwitchesEveryEntryWithOneFlag) {
  Fixture fx;
  fx.add("compute", kCompute, 0x1000);
  fx.add("other", kCompute, 0x2000);
  GatedStopSwitch m;
  for (const auto& p : fx.draft.planned) EXPECT_NO_THROW(m.check(p, false, fx.memory));

  RegionLayout layout;
  layout.image_offset = kPageSize;
  m.lay_out(fx.draft, layout, 4);
  EXPECT_EQ(layout.gates_offset, kPageSize + stubs_unwind_size(0, true));
  EXPECT_EQ(layout.gates_size, page_round_up(GatedStopSwitch::kFlagArea + 2 * GatedStopSwitch::kSlot));
  EXPECT_EQ(layout.image_offset, layout.gates_offset + layout.gates_size);
  layout.address = kRegion;
  m.place(fx.draft, layout);
  EXPECT_EQ(fx.draft.stubs_unwind, kRegion + kPageSize);
  const TransitionRecord& t = fx.draft.record.transition;
  EXPECT_EQ(t.gates, kRegion + layout.gates_offset);
  EXPECT_EQ(t.switch_flag, t.gates);
  EXPECT_TRUE(fx.draft.record.switch_gates());
  fx.place_replacements(kRegion + layout.image_offset);

  Bytes gates = m.gates(fx.draft, layout);
  ASSERT_EQ(gates.size(), layout.gates_size);
  EXPECT_EQ(gates[0], 0) << "the flag starts old";
  // Every entry to its gate, the flag, every entry to its replacement.
  const auto& w = fx.draft.plan.writes;
  ASSERT_EQ(w.size(), 5u);
  for (size_t i = 0; i < 2; ++i) {
    const FunctionRecord& fr = fx.draft.record.functions[i];
    uint64_t slot = GatedStopSwitch::kFlagArea + i * GatedStopSwitch::kSlot;
    EXPECT_EQ(fr.gate, t.gates + slot);
    EXPECT_EQ(fr.old_path, fr.gate + arch::kSwitchGateSize);
    EXPECT_EQ(fr.displaced, 9u);  // push, mov, mov $1: the whole instructions the jump covers
    Bytes code = arch::switch_gate_code(fr.gate, t.switch_flag, fr.replacement, fr.old_path);
    EXPECT_EQ(Bytes(gates.begin() + slot, gates.begin() + slot + code.size()), code);
    EXPECT_EQ(w[i].expected, fx.draft.planned[i].entry);
    EXPECT_EQ(w[i].bytes, fr.gate_redirect);
    EXPECT_EQ(w[3 + i].expected, fr.gate_redirect);
    EXPECT_EQ(w[3 + i].bytes, fr.redirect);
  }
  EXPECT_TRUE(w[2].activation);
  EXPECT_EQ(w[2].site.value, t.switch_flag);
  EXPECT_EQ(w[2].bytes, Bytes{1});
  EXPECT_EQ(fx.draft.plan.busy.back().range.start, t.gates);
}

TEST(SwitchMethod, GatedMethodsRefuseABranchIntoTheDisplacedBytes) {
  // push %rbp; mov %rsp,%rbp; nop; nop; jmp (back to the mov); ret
  const Bytes loops = {0x55, 0x48, 0x89, 0xe5, 0x90, 0x90, 0xeb, 0xf9, 0xc3};
  Fixture fx;
  fx.add("loops", loops, 0x1000);
  EXPECT_THROW(GatedStopSwitch().check(fx.draft.planned[0], false, fx.memory), Error);
  EXPECT_THROW(PerThreadSwitch().check(fx.draft.planned[0], false, fx.memory), Error);
  EXPECT_NO_THROW(DirectStopSwitch().check(fx.draft.planned[0], false, fx.memory));
}

TEST(SwitchMethod, PerThreadLaysOutAreaGatesStubsAndHandler) {
  Fixture fx;
  fx.add("compute", kCompute, 0x1000);
  fx.add("other", kCompute, 0x2000);
  PerThreadSwitch m;
  RegionLayout layout;
  layout.image_offset = kPageSize;
  m.lay_out(fx.draft, layout, 3);
  auto area = TransitionAreaLayout::for_threads(3);
  uint32_t stubs = std::min<uint32_t>(area.capacity, PerThreadSwitch::kMaxReturnStubs);
  // The area, then the exit stubs' unwind information.
  EXPECT_EQ(layout.transition_offset, kPageSize);
  EXPECT_EQ(layout.transition_size, area.size + stubs_unwind_size(stubs, false));
  EXPECT_EQ(layout.gates_offset, kPageSize + layout.transition_size);
  EXPECT_EQ(fx.draft.planned[0].slot, 0u);
  EXPECT_EQ(fx.draft.planned[1].slot, PerThreadSwitch::kSlot);
  // A gap before the first stub, whose FDE covers the byte before it.
  uint64_t first_stub = 2 * PerThreadSwitch::kSlot + 16;
  uint64_t slots = first_stub + stubs * arch::kReturnStubSize;
  EXPECT_EQ(layout.gates_size, page_round_up(slots + arch::trap_handler_size(2 + stubs)));
  EXPECT_EQ(layout.image_offset, layout.gates_offset + layout.gates_size);

  layout.address = kRegion;
  m.place(fx.draft, layout);
  const TransitionRecord& t = fx.draft.record.transition;
  uint64_t gates_at = kRegion + layout.gates_offset;
  EXPECT_EQ(t.area, kRegion + kPageSize);
  EXPECT_EQ(t.capacity, area.capacity);
  EXPECT_EQ(t.gates, gates_at);
  EXPECT_EQ(t.return_stubs, gates_at + first_stub);
  EXPECT_EQ(t.return_stub_count, stubs);
  EXPECT_EQ(t.trap_handler, gates_at + slots);
  EXPECT_EQ(fx.draft.stubs_unwind, t.area + area.size);
  arch::ReturnStubs described = m.described_stubs(fx.draft);
  EXPECT_EQ(described.exit_stubs, t.return_stubs);
  EXPECT_EQ(described.exit_count, stubs);
  EXPECT_EQ(described.stop_stub, 0u) << "the stop stub lies after the patch's code";
  EXPECT_FALSE(fx.draft.record.switch_gates());
  fx.place_replacements(kRegion + layout.image_offset);

  Bytes gates = m.gates(fx.draft, layout);
  ASSERT_EQ(gates.size(), layout.gates_size);
  const TransitionPlan& plan = m.transition();
  ASSERT_EQ(plan.entries.size(), 2u);
  area.address = t.area;
  for (size_t i = 0; i < 2; ++i) {
    const FunctionRecord& fr = fx.draft.record.functions[i];
    EXPECT_EQ(fr.gate, gates_at + fx.draft.planned[i].slot);
    Bytes code = arch::gate_code({fr.gate, area.table(), area.capacity, area.goal_byte(), fr.replacement, fr.old_path});
    EXPECT_EQ(plan.entries[i].gate_code, code);
    uint64_t slot = fr.gate - gates_at;
    EXPECT_EQ(Bytes(gates.begin() + slot, gates.begin() + slot + code.size()), code);
    EXPECT_EQ(plan.to_gates[i].expected, fx.draft.planned[i].entry);
    EXPECT_EQ(plan.to_gates[i].bytes, fr.gate_redirect);
    EXPECT_EQ(plan.to_new[i].bytes, fr.redirect);
    EXPECT_EQ(plan.to_old[i].bytes, fx.draft.planned[i].entry);
    EXPECT_EQ(plan.gate_of_site.at(fr.site), fr.gate);
    // The mov at +1 runs from the old path if a thread is stopped there.
    EXPECT_EQ(plan.interior.at(fr.site + 1), fr.old_path + 1);
  }
  EXPECT_EQ(plan.return_stub_count, stubs);
  EXPECT_EQ(plan.trap_handler, t.trap_handler);
  EXPECT_EQ(plan.new_code.front().range.start, fx.draft.record.code().start);
}

TEST(SwitchMethod, PerThreadPutsAFunctionBackThroughAGateOfItsOwn) {
  Fixture fx;
  fx.add("compute", kCompute, 0x1000);
  // "other" is redirected by a patch the cumulative one replaces.
  Bytes running = kCompute;
  Bytes jump = *arch::redirect_bytes(kBias + 0x2000, kRegion + 0x10000);
  std::copy(jump.begin(), jump.end(), running.begin());
  fx.memory.put(kBias + 0x2000, running);
  FunctionRecord old;
  old.symbol = "other";
  old.address = old.site = kBias + 0x2000;
  old.size = kCompute.size();
  old.original = Bytes(kCompute.begin(), kCompute.begin() + arch::kRedirectSize);
  old.redirect = jump;
  fx.draft.replaces = true;

  PerThreadSwitch m;
  m.plan_restore(fx.draft, old, old.original, jump, fx.memory);
  ASSERT_EQ(fx.draft.record.functions.size(), 2u);
  EXPECT_TRUE(fx.draft.record.functions[1].restores);
  EXPECT_EQ(fx.draft.planned[1].current, running);
  EXPECT_EQ(fx.draft.planned[1].original_code, kCompute);
  ASSERT_EQ(fx.draft.restored_code.size(), 1u);

  RegionLayout layout;
  layout.image_offset = kPageSize;
  m.lay_out(fx.draft, layout, 2);
  EXPECT_EQ(fx.draft.planned[1].slot, PerThreadSwitch::kSlot);
  layout.address = kRegion;
  m.place(fx.draft, layout);
  // The patch's own replacement for compute; none for the restored one yet.
  auto& own = fx.draft.record.functions[0];
  own.replacement = kRegion + layout.image_offset;
  own.redirect = *arch::redirect_bytes(own.site, own.replacement);
  fx.draft.plan.writes[0].bytes = own.redirect;
  m.gates(fx.draft, layout);

  // Its new code is the original's first instructions relocated after its
  // gate and old path; its old path runs the replaced patch's jump.
  const FunctionRecord& back = fx.draft.record.functions[1];
  EXPECT_EQ(back.replacement, back.gate + PerThreadSwitch::kSlot);
  EXPECT_GT(back.replacement_size, 0u);
  const TransitionPlan& plan = m.transition();
  EXPECT_EQ(plan.to_gates[1].expected, jump);
  EXPECT_EQ(plan.to_old[1].bytes, jump);
  EXPECT_EQ(plan.new_code.size(), 2u) << "the patch's code and the function put back";
}

}  // namespace
}  // namespace graft
