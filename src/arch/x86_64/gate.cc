#include "arch/x86_64/gate.h"

#include <sys/user.h>

#include <algorithm>

#include "arch/x86_64/assembler.h"
#include "common/error.h"

namespace graft::arch {

namespace {

void assemble(Assembler& a, const GateAddresses& g) {
  using A = Assembler;
  const uint32_t slot_mask = (g.capacity - 1) << 4;  // byte offset of a 16-byte entry
  a.emit(ZYDIS_MNEMONIC_PUSH, {A::reg(ZYDIS_REGISTER_RAX)});
  a.emit(ZYDIS_MNEMONIC_PUSH, {A::reg(ZYDIS_REGISTER_RCX)});
  a.emit(ZYDIS_MNEMONIC_PUSH, {A::reg(ZYDIS_REGISTER_RDX)});
  a.emit(ZYDIS_MNEMONIC_MOV,
         {A::reg(ZYDIS_REGISTER_RAX), A::mem(ZYDIS_REGISTER_NONE, ZYDIS_REGISTER_NONE, 0, 8)},
         ZYDIS_ATTRIB_HAS_SEGMENT_FS);
  a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_RCX), A::reg(ZYDIS_REGISTER_RAX)});
  a.emit(ZYDIS_MNEMONIC_SHR, {A::reg(ZYDIS_REGISTER_RCX), A::imm(6)});
  a.emit(ZYDIS_MNEMONIC_IMUL, {A::reg(ZYDIS_REGISTER_ECX), A::reg(ZYDIS_REGISTER_ECX),
                               A::imm(static_cast<int32_t>(0x9E3779B1u))});
  a.emit(ZYDIS_MNEMONIC_SHR, {A::reg(ZYDIS_REGISTER_ECX), A::imm(16)});
  a.emit(ZYDIS_MNEMONIC_AND, {A::reg(ZYDIS_REGISTER_ECX), A::imm(g.capacity - 1)});
  a.emit(ZYDIS_MNEMONIC_SHL, {A::reg(ZYDIS_REGISTER_ECX), A::imm(4)});
  a.emit(ZYDIS_MNEMONIC_LEA, {A::reg(ZYDIS_REGISTER_RDX), A::rip(g.table, 8)});
  a.label("probe");
  a.emit(ZYDIS_MNEMONIC_CMP,
         {A::mem(ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_RCX, 0, 8), A::reg(ZYDIS_REGISTER_RAX)});
  a.branch(ZYDIS_MNEMONIC_JZ, a.at("found"));
  a.emit(ZYDIS_MNEMONIC_CMP, {A::mem(ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_RCX, 0, 8), A::imm(0)});
  a.branch(ZYDIS_MNEMONIC_JZ, a.at("absent"));
  a.emit(ZYDIS_MNEMONIC_ADD, {A::reg(ZYDIS_REGISTER_ECX), A::imm(16)});
  a.emit(ZYDIS_MNEMONIC_AND, {A::reg(ZYDIS_REGISTER_ECX), A::imm(slot_mask)});
  a.branch(ZYDIS_MNEMONIC_JMP, a.at("probe"));
  a.label("found");
  a.emit(ZYDIS_MNEMONIC_CMP, {A::mem(ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_RCX, 8, 1), A::imm(1)});
  a.branch(ZYDIS_MNEMONIC_JMP, a.at("decide"));
  a.label("absent");
  a.emit(ZYDIS_MNEMONIC_CMP, {A::rip(g.goal_byte, 1), A::imm(1)});
  a.label("decide");
  a.emit(ZYDIS_MNEMONIC_POP, {A::reg(ZYDIS_REGISTER_RDX)});
  a.emit(ZYDIS_MNEMONIC_POP, {A::reg(ZYDIS_REGISTER_RCX)});
  a.emit(ZYDIS_MNEMONIC_POP, {A::reg(ZYDIS_REGISTER_RAX)});
  a.branch(ZYDIS_MNEMONIC_JZ, g.new_code);
  a.branch(ZYDIS_MNEMONIC_JMP, g.old_path);
}

}  // namespace

Bytes gate_code(const GateAddresses& g) {
  if (g.capacity == 0 || (g.capacity & (g.capacity - 1)) != 0 || g.capacity > 65536)
    fail("transition table capacity {} is not a power of two up to 65536", g.capacity);
  Bytes code = assemble_two_pass(g.gate, [&](Assembler& a) { assemble(a, g); });
  if (code.size() > kMaxGateSize) fail("gate code is {} bytes, more than {}", code.size(), kMaxGateSize);
  return code;
}

Bytes switch_gate_code(uint64_t at, uint64_t flag, uint64_t new_code, uint64_t old_path) {
  Bytes code = assemble_two_pass(at, [&](Assembler& a) {
    a.emit(ZYDIS_MNEMONIC_CMP, {Assembler::rip(flag, 1), Assembler::imm(1)});
    a.branch(ZYDIS_MNEMONIC_JZ, new_code);
    a.branch(ZYDIS_MNEMONIC_JMP, old_path);
  });
  if (code.size() > kSwitchGateSize) fail("switch gate is {} bytes, more than {}", code.size(), kSwitchGateSize);
  return code;
}

// gate_code()'s frame: push rax, rcx, rdx at offsets 0-2; at its end pop
// rdx, rcx, rax, then jz rel32 (6 bytes) and jmp rel32 (5 bytes), the
// assembler's fixed-width forms.
std::optional<Registers> registers_before_gate(const Registers& r, const Bytes& code, uint64_t offset,
                                               const uint64_t (&saved)[3], uint64_t entry) {
  constexpr size_t kTail = 3 + 6 + 5;
  if (offset >= code.size() || code.size() < 3 + kTail) return std::nullopt;
  const size_t pops = code.size() - kTail;
  const uint8_t pushes_bytes[3] = {0x50, 0x51, 0x52}, pops_bytes[3] = {0x5a, 0x59, 0x58};
  if (!std::equal(pushes_bytes, pushes_bytes + 3, code.begin()) ||
      !std::equal(pops_bytes, pops_bytes + 3, code.begin() + pops) || code[pops + 3] != 0x0f ||
      code[pops + 4] != 0x84 || code[pops + 9] != 0xe9)
    return std::nullopt;
  // How many are saved and not yet restored: the first `held` of rax, rcx,
  // rdx, the last of them at [rsp].
  int held = offset < 3      ? static_cast<int>(offset)
             : offset <= pops ? 3
                              : std::max(0, 3 - static_cast<int>(offset - pops));
  Registers out = r;
  unsigned long long Registers::*order[3] = {&Registers::rax, &Registers::rcx, &Registers::rdx};
  for (int k = 0; k < held; ++k) out.*order[k] = saved[held - 1 - k];
  out.rsp = r.rsp + 8 * static_cast<uint64_t>(held);
  out.rip = entry;
  return out;
}

uint64_t thread_pointer(const Registers& r) { return r.fs_base; }

}  // namespace graft::arch
