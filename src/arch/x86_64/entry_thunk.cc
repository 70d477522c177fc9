#include "arch/x86_64/entry_thunk.h"

#include <cstring>
#include <vector>

#include "arch/x86_64/assembler.h"
#include "arch/x86_64/call_frame_info.h"
#include "common/error.h"

namespace graft::arch {

namespace {

using A = Assembler;

constexpr ZydisRegister kGpr[16] = {
    ZYDIS_REGISTER_RAX, ZYDIS_REGISTER_RCX, ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_RBX,
    ZYDIS_REGISTER_RSP, ZYDIS_REGISTER_RBP, ZYDIS_REGISTER_RSI, ZYDIS_REGISTER_RDI,
    ZYDIS_REGISTER_R8,  ZYDIS_REGISTER_R9,  ZYDIS_REGISTER_R10, ZYDIS_REGISTER_R11,
    ZYDIS_REGISTER_R12, ZYDIS_REGISTER_R13, ZYDIS_REGISTER_R14, ZYDIS_REGISTER_R15};

struct Slot {
  ZydisRegister reg;
  int64_t offset;  // from %rbp
  bool vector;
};

}  // namespace

EntryThunk entry_thunk(RegisterSet preserved, uint64_t stack_argument_bytes) {
  if (preserved & ~caller_saved_registers())
    fail("entry thunk: {} are not call-clobbered registers", register_names(preserved & ~caller_saved_registers()));
  if (stack_argument_bytes % 8 || stack_argument_bytes > kMaxThunkStackArgumentBytes)
    fail("entry thunk: cannot copy {} bytes of stack arguments", stack_argument_bytes);

  std::vector<Slot> slots;
  int64_t used = 0;
  for (int i = 0; i < 16; ++i)
    if (preserved & (RegisterSet(1) << i)) slots.push_back({kGpr[i], -(used += 8), false});
  used = (used + 15) / 16 * 16;
  for (int i = 0; i < 16; ++i)
    if (preserved & (RegisterSet(1) << (16 + i)))
      slots.push_back({static_cast<ZydisRegister>(ZYDIS_REGISTER_XMM0 + i), -(used += 16), true});
  const uint64_t words = stack_argument_bytes / 8;
  const int64_t frame = (used + 15) / 16 * 16;

  EntryThunk t;
  uint64_t after_push = 0, after_frame = 0, after_leave = 0;
  t.code = assemble_two_pass(0, [&](A& a) {
    a.emit(ZYDIS_MNEMONIC_PUSH, {A::reg(ZYDIS_REGISTER_RBP)});
    a.label("pushed");
    a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_RBP), A::reg(ZYDIS_REGISTER_RSP)});
    a.label("framed");
    if (frame) a.emit(ZYDIS_MNEMONIC_SUB, {A::reg(ZYDIS_REGISTER_RSP), A::imm(frame)});
    // GCC's -fipa-stack-alignment lets a caller call a function it knows
    // needs no alignment with %rsp misaligned; the replacement may need it.
    a.emit(ZYDIS_MNEMONIC_AND, {A::reg(ZYDIS_REGISTER_RSP), A::imm(-16)});
    if (words % 2) a.emit(ZYDIS_MNEMONIC_SUB, {A::reg(ZYDIS_REGISTER_RSP), A::imm(8)});
    for (const Slot& s : slots)
      a.emit(s.vector ? ZYDIS_MNEMONIC_MOVUPS : ZYDIS_MNEMONIC_MOV,
             {A::mem(ZYDIS_REGISTER_RBP, ZYDIS_REGISTER_NONE, s.offset, s.vector ? 16 : 8), A::reg(s.reg)});
    for (uint64_t j = words; j-- > 0;)
      a.emit(ZYDIS_MNEMONIC_PUSH,
             {A::mem(ZYDIS_REGISTER_RBP, ZYDIS_REGISTER_NONE, static_cast<int64_t>(16 + 8 * j), 8)});
    a.label("call");
    a.branch(ZYDIS_MNEMONIC_CALL, 0);
    for (const Slot& s : slots)
      a.emit(s.vector ? ZYDIS_MNEMONIC_MOVUPS : ZYDIS_MNEMONIC_MOV,
             {A::reg(s.reg), A::mem(ZYDIS_REGISTER_RBP, ZYDIS_REGISTER_NONE, s.offset, s.vector ? 16 : 8)});
    a.emit(ZYDIS_MNEMONIC_LEAVE, {});
    a.label("left");
    a.emit(ZYDIS_MNEMONIC_RET, {});
    after_push = a.at("pushed");
    after_frame = a.at("framed");
    after_leave = a.at("left");
    t.call_field = a.at("call") + 1;  // e8 rel32
  });
  std::memset(t.code.data() + t.call_field, 0, 4);

  // At entry the CFA is %rsp+8 and the return address is at CFA-8.
  Bytes& c = t.cfi;
  const size_t cie = cfi::append_cie(c, {cfi::kDefCfa, cfi::kRsp, 8, cfi::kOffset | cfi::kReturnAddress, 1});
  const size_t fde = cfi::append_fde(c, cie, 0, static_cast<uint32_t>(t.code.size()));
  t.cfi_pc_begin = fde + 8;
  cfi::advance(c, after_push);
  cfi::append(c, {cfi::kDefCfaOffset, 16, cfi::kOffset | cfi::kRbp, 2});
  cfi::advance(c, after_frame - after_push);
  cfi::append(c, {cfi::kDefCfaRegister, cfi::kRbp});
  cfi::advance(c, after_leave - after_frame);
  cfi::append(c, {cfi::kDefCfa, cfi::kRsp, 8, cfi::kRestore | cfi::kRbp});
  cfi::finish_entry(c, fde);
  return t;
}

}  // namespace graft::arch
