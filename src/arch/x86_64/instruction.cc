#include "arch/x86_64/instruction.h"

#include <Zydis/Zydis.h>

#include <algorithm>

namespace graft::arch {

namespace {

constexpr RegisterSet gpr(int i) { return RegisterSet(1) << i; }
constexpr RegisterSet vec(int i) { return RegisterSet(1) << (16 + i); }

// Bit of a register (any width), or 0 for registers not tracked.
RegisterSet bit(ZydisRegister r) {
  if (r == ZYDIS_REGISTER_NONE) return 0;
  ZydisRegister full = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, r);
  if (full >= ZYDIS_REGISTER_RAX && full <= ZYDIS_REGISTER_R15) return gpr(full - ZYDIS_REGISTER_RAX);
  if (full >= ZYDIS_REGISTER_ZMM0 && full <= ZYDIS_REGISTER_ZMM15) return vec(full - ZYDIS_REGISTER_ZMM0);
  return 0;
}

bool whole_register_write(const ZydisDecodedOperand& op) {
  ZydisRegisterClass c = ZydisRegisterGetClass(op.reg.value);
  if (c == ZYDIS_REGCLASS_GPR32 || c == ZYDIS_REGCLASS_GPR64) return true;  // 32-bit writes zero-extend
  return c == ZYDIS_REGCLASS_XMM || c == ZYDIS_REGCLASS_YMM || c == ZYDIS_REGCLASS_ZMM;
}

bool zeroing_idiom(const ZydisDecodedInstruction& ins, const ZydisDecodedOperand* ops) {
  switch (ins.mnemonic) {
    case ZYDIS_MNEMONIC_XOR: case ZYDIS_MNEMONIC_SUB: case ZYDIS_MNEMONIC_PXOR:
    case ZYDIS_MNEMONIC_XORPS: case ZYDIS_MNEMONIC_XORPD: case ZYDIS_MNEMONIC_VPXOR:
    case ZYDIS_MNEMONIC_VXORPS: case ZYDIS_MNEMONIC_VXORPD:
      break;
    default:
      return false;
  }
  int n = ins.operand_count_visible;
  if (n < 2 || ops[n - 1].type != ZYDIS_OPERAND_TYPE_REGISTER ||
      ops[n - 2].type != ZYDIS_OPERAND_TYPE_REGISTER)
    return false;
  return ops[n - 1].reg.value == ops[n - 2].reg.value;
}

}  // namespace

std::optional<Instruction> decode_instruction(std::span<const uint8_t> code, uint64_t address) {
  static ZydisDecoder decoder = [] {
    ZydisDecoder d;
    ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    return d;
  }();
  ZydisDecodedInstruction ins;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, code.data(), code.size(), &ins, ops)))
    return std::nullopt;
  Instruction out;
  out.address = address;
  out.length = ins.length;
  out.operation = ins.mnemonic;
  out.padding = ins.mnemonic == ZYDIS_MNEMONIC_NOP;
  bool zeroing = zeroing_idiom(ins, ops);
  for (int i = 0; i < ins.operand_count; ++i) {
    const ZydisDecodedOperand& op = ops[i];
    if (op.type == ZYDIS_OPERAND_TYPE_REGISTER) {
      RegisterSet b = bit(op.reg.value);
      ZydisRegisterClass c = ZydisRegisterGetClass(op.reg.value);
      // vzeroupper names every ymm register, but only as hidden operands.
      if ((c == ZYDIS_REGCLASS_YMM || c == ZYDIS_REGCLASS_ZMM) && i < ins.operand_count_visible)
        out.wide_vector = true;
      if ((op.actions & ZYDIS_OPERAND_ACTION_MASK_READ) && !zeroing) {
        out.reads |= b;
        out.value_reads |= b;
      }
      if (op.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) {
        out.writes |= b;
        if ((op.actions & ZYDIS_OPERAND_ACTION_WRITE) && whole_register_write(op)) out.overwrites |= b;
      }
    } else if (op.type == ZYDIS_OPERAND_TYPE_MEMORY) {
      out.reads |= bit(op.mem.base) | bit(op.mem.index);
      out.address_reads |= bit(op.mem.base) | bit(op.mem.index);
      if (op.size >= 128 && i < ins.operand_count_visible) out.wide_memory = true;
      if (op.mem.type == ZYDIS_MEMOP_TYPE_AGEN)
        out.takes_address = true;
      else if (op.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE)
        (i < ins.operand_count_visible ? out.memory_write : out.stack_write) = true;
    }
  }
  constexpr RegisterSet kRsp = RegisterSet(1) << 4;
  if (out.writes & kRsp) {
    const bool sp_first = ins.operand_count_visible > 0 && ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
                          ops[0].reg.value == ZYDIS_REGISTER_RSP;
    const bool imm_second = ins.operand_count_visible > 1 && ops[1].type == ZYDIS_OPERAND_TYPE_IMMEDIATE;
    switch (ins.mnemonic) {
      case ZYDIS_MNEMONIC_PUSH: out.stack_change = -int64_t(ins.operand_width / 8); break;
      case ZYDIS_MNEMONIC_POP: out.stack_change = int64_t(ins.operand_width / 8); break;
      case ZYDIS_MNEMONIC_CALL: case ZYDIS_MNEMONIC_RET: out.stack_change = 0; break;
      case ZYDIS_MNEMONIC_SUB:
        out.stack_change = sp_first && imm_second ? std::optional<int64_t>(-ops[1].imm.value.s) : std::nullopt;
        break;
      case ZYDIS_MNEMONIC_ADD:
        out.stack_change = sp_first && imm_second ? std::optional<int64_t>(ops[1].imm.value.s) : std::nullopt;
        break;
      case ZYDIS_MNEMONIC_LEA:
        out.stack_change = sp_first && ops[1].mem.base == ZYDIS_REGISTER_RSP && ops[1].mem.index == ZYDIS_REGISTER_NONE
                               ? std::optional<int64_t>(ops[1].mem.disp.value)
                               : std::nullopt;
        break;
      default:
        out.stack_change = std::nullopt;
    }
  }
  bool relative = ins.operand_count_visible > 0 && ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
                  ops[0].imm.is_relative;
  if (relative) {
    ZyanU64 target;
    if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&ins, &ops[0], address, &target))) out.target = target;
  }
  switch (ins.meta.category) {
    case ZYDIS_CATEGORY_CALL:
      out.flow = out.target ? Instruction::Flow::Call : Instruction::Flow::IndirectCall;
      break;
    case ZYDIS_CATEGORY_RET:
      out.flow = Instruction::Flow::Return;
      break;
    case ZYDIS_CATEGORY_UNCOND_BR:
      out.flow = out.target ? Instruction::Flow::Jump : Instruction::Flow::IndirectJump;
      break;
    case ZYDIS_CATEGORY_COND_BR:
      out.flow = out.target ? Instruction::Flow::ConditionalJump : Instruction::Flow::IndirectJump;
      break;
    default:
      if (ins.mnemonic == ZYDIS_MNEMONIC_UD2 || ins.mnemonic == ZYDIS_MNEMONIC_HLT ||
          ins.mnemonic == ZYDIS_MNEMONIC_INT3)
        out.flow = Instruction::Flow::Stop;
  }
  return out;
}

DecodedFunction decode_function(std::span<const uint8_t> code) {
  DecodedFunction out;
  for (uint64_t at = 0; at < code.size();) {
    auto ins = decode_instruction(code.subspan(at), at);
    if (!ins) {
      out.undecodable = at;
      break;
    }
    out.instructions.push_back(*ins);
    at += ins->length;
  }
  return out;
}

const Instruction* DecodedFunction::containing(uint64_t at) const {
  auto it = std::upper_bound(instructions.begin(), instructions.end(), at,
                             [](uint64_t a, const Instruction& i) { return a < i.address; });
  if (it == instructions.begin()) return nullptr;
  --it;
  return at < it->address + it->length ? &*it : nullptr;
}

}  // namespace graft::arch
