// Relocation of the instructions an entry jump displaces, and the gate code
// (src/arch/x86_64/displaced.cc, gate.cc): every case is checked by decoding
// the produced bytes with Zydis and comparing absolute addresses.
#include <Zydis/Zydis.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "arch/x86_64/displaced.h"
#include "arch/x86_64/gate.h"
#include "common/error.h"

namespace graft {
namespace {

struct Insn {
  ZydisDecodedInstruction ins;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  uint64_t address;
};

std::vector<Insn> decode_all(const Bytes& code, uint64_t address) {
  ZydisDecoder d;
  ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  std::vector<Insn> out;
  size_t off = 0;
  while (off < code.size()) {
    Insn i;
    i.address = address + off;
    EXPECT_TRUE(ZYAN_SUCCESS(ZydisDecoderDecodeFull(&d, code.data() + off, code.size() - off, &i.ins, i.ops)))
        << "at offset " << off;
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&d, code.data() + off, code.size() - off, &i.ins, i.ops))) break;
    off += i.ins.length;
    out.push_back(i);
  }
  return out;
}

uint64_t absolute(const Insn& i, int op) {
  ZyanU64 a = 0;
  EXPECT_TRUE(ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&i.ins, &i.ops[op], i.address, &a)));
  return a;
}

constexpr uint64_t kSite = 0x555555554000;
constexpr uint64_t kOld = kSite - 0x10000;  // the old path, below the function

Bytes with_padding(Bytes b) {
  b.resize(b.size() + 16, 0x90);
  return b;
}

TEST(Displaced, PlainInstructionsAreCopiedAndJumpBack) {
  // push %rbp; mov %rsp,%rbp; sub $0x10,%rsp
  Bytes code = with_padding({0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10});
  auto d = arch::relocate_displaced(code, kSite, kOld, "f");
  EXPECT_EQ(d.length, 8u);
  EXPECT_EQ(d.boundaries, (std::vector<size_t>{1, 4}));
  EXPECT_EQ(d.old_path_offsets, (std::vector<size_t>{1, 4}));
  ASSERT_EQ(d.old_path.size(), 8u + 5u);
  EXPECT_TRUE(std::equal(code.begin(), code.begin() + 8, d.old_path.begin()));
  auto ins = decode_all(d.old_path, kOld);
  ASSERT_EQ(ins.size(), 4u);
  EXPECT_EQ(ins[3].ins.mnemonic, ZYDIS_MNEMONIC_JMP);
  EXPECT_EQ(absolute(ins[3], 0), kSite + 8);
}

TEST(Displaced, RipRelativeOperandKeepsItsAddress) {
  // mov 0x2ff1(%rip),%eax ; 6 bytes
  Bytes code = with_padding({0x8b, 0x05, 0xf1, 0x2f, 0x00, 0x00});
  auto d = arch::relocate_displaced(code, kSite, kOld, "f");
  EXPECT_EQ(d.length, 6u);
  EXPECT_TRUE(d.boundaries.empty());
  auto ins = decode_all(d.old_path, kOld);
  ASSERT_EQ(ins.size(), 2u);
  EXPECT_EQ(ins[0].ins.mnemonic, ZYDIS_MNEMONIC_MOV);
  EXPECT_EQ(absolute(ins[0], 1), kSite + 6 + 0x2ff1);
  EXPECT_EQ(absolute(ins[1], 0), kSite + 6);
}

TEST(Displaced, LeaRipRelative) {
  // lea -0x100(%rip),%rdi ; 7 bytes
  Bytes code = with_padding({0x48, 0x8d, 0x3d, 0x00, 0xff, 0xff, 0xff});
  auto d = arch::relocate_displaced(code, kSite, kOld, "f");
  auto ins = decode_all(d.old_path, kOld);
  ASSERT_EQ(ins.size(), 2u);
  EXPECT_EQ(ins[0].ins.mnemonic, ZYDIS_MNEMONIC_LEA);
  EXPECT_EQ(absolute(ins[0], 1), kSite + 7 - 0x100);
}

TEST(Displaced, ShortConditionalBranchBecomesRel32) {
  // test %edi,%edi; je +0x20; push %rbx
  Bytes code = with_padding({0x85, 0xff, 0x74, 0x20, 0x53});
  auto d = arch::relocate_displaced(code, kSite, kOld, "f");
  EXPECT_EQ(d.length, 5u);
  auto ins = decode_all(d.old_path, kOld);
  ASSERT_EQ(ins.size(), 4u);
  EXPECT_EQ(ins[1].ins.mnemonic, ZYDIS_MNEMONIC_JZ);
  EXPECT_EQ(ins[1].ins.raw.imm[0].size, 32);
  // push %rbx follows the 2-byte test and the now 6-byte je
  EXPECT_EQ(d.boundaries, (std::vector<size_t>{2, 4}));
  EXPECT_EQ(d.old_path_offsets, (std::vector<size_t>{2, 8}));
  EXPECT_EQ(absolute(ins[1], 0), kSite + 4 + 0x20);
  EXPECT_EQ(ins[2].ins.mnemonic, ZYDIS_MNEMONIC_PUSH);
  EXPECT_EQ(absolute(ins[3], 0), kSite + 5);
}

TEST(Displaced, CallAndJumpRel32KeepTheirTargets) {
  // call +0x1000 (an -pg style entry), then jmp +0x40
  Bytes code = with_padding({0xe8, 0x00, 0x10, 0x00, 0x00, 0xe9, 0x40, 0x00, 0x00, 0x00});
  auto d = arch::relocate_displaced(code, kSite, kOld, "f");
  EXPECT_EQ(d.length, 5u);
  auto ins = decode_all(d.old_path, kOld);
  ASSERT_EQ(ins.size(), 2u);
  EXPECT_EQ(ins[0].ins.mnemonic, ZYDIS_MNEMONIC_CALL);
  EXPECT_EQ(absolute(ins[0], 0), kSite + 5 + 0x1000);

  // A site already holding a graft jump (stacking): the old path is that jump.
  Bytes jump = with_padding({0xe9, 0x00, 0x00, 0x10, 0x00});
  auto s = arch::relocate_displaced(jump, kSite, kOld, "f");
  auto j = decode_all(s.old_path, kOld);
  EXPECT_EQ(j[0].ins.mnemonic, ZYDIS_MNEMONIC_JMP);
  EXPECT_EQ(absolute(j[0], 0), kSite + 5 + 0x100000);
}

TEST(Displaced, RefusesWhatCannotMove) {
  // jrcxz has no rel32 form
  EXPECT_THROW(arch::relocate_displaced(with_padding({0xe3, 0x10, 0x90, 0x90, 0x90}), kSite, kOld, "f"),
               Error);
  // a branch into the displaced bytes
  EXPECT_THROW(arch::relocate_displaced(with_padding({0x90, 0x74, 0xfe, 0x90, 0x90}), kSite, kOld, "f"),
               Error);
  // ret before 5 bytes
  EXPECT_THROW(arch::relocate_displaced(with_padding({0x31, 0xc0, 0xc3, 0x90, 0x90}), kSite, kOld, "f"),
               Error);
  // a RIP-relative operand out of reach from the old path
  EXPECT_THROW(arch::relocate_displaced(with_padding({0x8b, 0x05, 0x00, 0x00, 0x00, 0x70}), kSite,
                                        kSite + (uint64_t(1) << 33), "f"),
               Error);
}

TEST(Displaced, BranchIntoTheEntryIsFound) {
  // body: ... jmp back to site+1 (a loop starting at the second instruction)
  Bytes fn = {0x55, 0x48, 0x89, 0xe5, 0x90, 0xeb, 0xfa};  // jmp -6 -> offset 1
  EXPECT_THROW(arch::check_no_branch_into(fn, kSite, kSite, 5, "f"), Error);
  Bytes ok = {0x55, 0x48, 0x89, 0xe5, 0x90, 0xeb, 0xf9};  // jmp -7 -> offset 0 (the entry)
  EXPECT_NO_THROW(arch::check_no_branch_into(ok, kSite, kSite, 5, "f"));
}

TEST(Gate, DecodesAndReachesBothPaths) {
  arch::GateAddresses g;
  g.gate = 0x7f0000001000;
  g.table = 0x7f0000010000;
  g.capacity = 256;
  g.goal_byte = 0x7f000000f010;
  g.new_code = 0x7f0000020000;
  g.old_path = g.gate + 0x80;
  Bytes code = arch::gate_code(g);
  auto ins = decode_all(code, g.gate);
  ASSERT_GE(ins.size(), 10u);
  EXPECT_EQ(ins[3].ins.mnemonic, ZYDIS_MNEMONIC_MOV);
  EXPECT_EQ(ins[3].ops[1].mem.segment, ZYDIS_REGISTER_FS);
  auto& last = ins.back();
  auto& before = ins[ins.size() - 2];
  EXPECT_EQ(last.ins.mnemonic, ZYDIS_MNEMONIC_JMP);
  EXPECT_EQ(absolute(last, 0), g.old_path);
  EXPECT_EQ(before.ins.mnemonic, ZYDIS_MNEMONIC_JZ);
  EXPECT_EQ(absolute(before, 0), g.new_code);
  // Every push has its pop, and nothing else touches the stack pointer.
  int depth = 0;
  for (const auto& i : ins) {
    if (i.ins.mnemonic == ZYDIS_MNEMONIC_PUSH) ++depth;
    if (i.ins.mnemonic == ZYDIS_MNEMONIC_POP) --depth;
  }
  EXPECT_EQ(depth, 0);
  // Every internal branch lands on an instruction of the gate.
  for (const auto& i : ins) {
    if (i.ins.meta.category != ZYDIS_CATEGORY_COND_BR && i.ins.meta.category != ZYDIS_CATEGORY_UNCOND_BR)
      continue;
    uint64_t t = absolute(i, 0);
    if (t == g.new_code || t == g.old_path) continue;
    bool lands = false;
    for (const auto& j : ins) lands |= j.address == t;
    EXPECT_TRUE(lands) << std::hex << t;
  }
  EXPECT_THROW(arch::gate_code({g.gate, g.table, 100, g.goal_byte, g.new_code, g.old_path}), Error);
}

// A thread stopped before any instruction of a gate is taken back to the
// function's entry with its registers as they were there: checked at every
// instruction against the pushes and pops Zydis decodes, not against the
// layout registers_before_gate() assumes.
TEST(Gate, AThreadInAGateIsTakenBackToTheEntry) {
  arch::GateAddresses g{0x7f0000001000, 0x7f0000010000, 256, 0x7f000000f010, 0x7f0000020000, 0x7f0000001080};
  Bytes code = arch::gate_code(g);
  const uint64_t entry = 0x401000, entry_sp = 0x7ffd0000;
  const std::map<ZydisRegister, uint64_t> at_entry = {
      {ZYDIS_REGISTER_RAX, 0xa1}, {ZYDIS_REGISTER_RCX, 0xc1}, {ZYDIS_REGISTER_RDX, 0xd1}};
  std::vector<ZydisRegister> saved_regs;  // pushed and not yet popped, in push order
  for (const auto& i : decode_all(code, g.gate)) {
    // The state at this instruction: saved registers hold anything.
    arch::Registers r{};
    r.rsp = entry_sp - 8 * saved_regs.size();
    r.rip = i.address;
    r.rax = r.rcx = r.rdx = 0xbad;
    for (auto [reg, v] : at_entry)
      if (std::find(saved_regs.begin(), saved_regs.end(), reg) == saved_regs.end())
        (reg == ZYDIS_REGISTER_RAX ? r.rax : reg == ZYDIS_REGISTER_RCX ? r.rcx : r.rdx) = v;
    uint64_t stack[3] = {0, 0, 0};  // stack[0] at rsp: the last pushed
    for (size_t k = 0; k < saved_regs.size(); ++k) stack[k] = at_entry.at(saved_regs[saved_regs.size() - 1 - k]);
    auto out = arch::registers_before_gate(r, code, i.address - g.gate, stack, entry);
    ASSERT_TRUE(out) << "offset " << i.address - g.gate;
    EXPECT_EQ(out->rip, entry);
    EXPECT_EQ(out->rsp, entry_sp) << "offset " << i.address - g.gate;
    EXPECT_EQ(out->rax, 0xa1u) << "offset " << i.address - g.gate;
    EXPECT_EQ(out->rcx, 0xc1u) << "offset " << i.address - g.gate;
    EXPECT_EQ(out->rdx, 0xd1u) << "offset " << i.address - g.gate;
    if (i.ins.mnemonic == ZYDIS_MNEMONIC_PUSH) saved_regs.push_back(i.ops[0].reg.value);
    if (i.ins.mnemonic == ZYDIS_MNEMONIC_POP) {
      ASSERT_FALSE(saved_regs.empty());
      EXPECT_EQ(saved_regs.back(), i.ops[0].reg.value);
      saved_regs.pop_back();
    }
  }
  uint64_t stack[3] = {};
  arch::Registers r{};
  EXPECT_FALSE(arch::registers_before_gate(r, code, code.size(), stack, entry));
  Bytes other = arch::switch_gate_code(g.gate, g.goal_byte, g.new_code, g.old_path);
  EXPECT_FALSE(arch::registers_before_gate(r, other, 0, stack, entry));
}

}  // namespace
}  // namespace graft
