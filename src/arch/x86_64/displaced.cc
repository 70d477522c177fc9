#include "arch/x86_64/displaced.h"

#include <Zydis/Zydis.h>

#include <cstring>

#include "arch/x86_64/jump.h"
#include "common/error.h"

namespace graft::arch {

namespace {

const ZydisDecoder& decoder() {
  static ZydisDecoder d = [] {
    ZydisDecoder x;
    ZydisDecoderInit(&x, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    return x;
  }();
  return d;
}

struct Decoded {
  ZydisDecodedInstruction ins;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
};

bool decode(std::span<const uint8_t> code, Decoded& out) {
  return ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder(), code.data(), code.size(), &out.ins, out.ops));
}

bool is_relative_branch(const Decoded& d) {
  return d.ins.operand_count_visible > 0 && d.ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
         d.ops[0].imm.is_relative;
}

bool has_rip_operand(const Decoded& d) {
  for (int i = 0; i < d.ins.operand_count_visible; ++i)
    if (d.ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && d.ops[i].mem.base == ZYDIS_REGISTER_RIP)
      return true;
  return false;
}

bool ends_flow(const Decoded& d) {
  switch (d.ins.meta.category) {
    case ZYDIS_CATEGORY_RET:
    case ZYDIS_CATEGORY_UNCOND_BR:
      return true;
    default:
      return d.ins.mnemonic == ZYDIS_MNEMONIC_UD2 || d.ins.mnemonic == ZYDIS_MNEMONIC_HLT ||
             d.ins.mnemonic == ZYDIS_MNEMONIC_INT3;
  }
}

// Re-encodes `d` (at `from`) to run at `to` with the same absolute branch
// target or memory address. Branches get their rel32 form.
Bytes reencode(const Decoded& d, uint64_t from, uint64_t to, const std::string& function) {
  ZydisEncoderRequest req;
  if (!ZYAN_SUCCESS(ZydisEncoderDecodedInstructionToEncoderRequest(&d.ins, d.ops,
                                                                   d.ins.operand_count_visible, &req)))
    fail("function `{}': cannot re-encode the instruction at {:#x}", function, from);
  for (int i = 0; i < d.ins.operand_count_visible; ++i) {
    ZyanU64 abs = 0;
    if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&d.ins, &d.ops[i], from, &abs))) continue;
    if (d.ops[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE && d.ops[i].imm.is_relative) {
      req.operands[i].imm.u = abs;
      req.branch_type = ZYDIS_BRANCH_TYPE_NEAR;
      req.branch_width = ZYDIS_BRANCH_WIDTH_32;
    } else if (d.ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && d.ops[i].mem.base == ZYDIS_REGISTER_RIP) {
      req.operands[i].mem.displacement = static_cast<ZyanI64>(abs);
    }
  }
  uint8_t buf[ZYDIS_MAX_INSTRUCTION_LENGTH];
  ZyanUSize len = sizeof buf;
  if (!ZYAN_SUCCESS(ZydisEncoderEncodeInstructionAbsolute(&req, buf, &len, to)))
    fail("function `{}': the instruction at {:#x} cannot be moved to {:#x} (out of rel32 reach, or "
         "no rel32 form)",
         function, from, to);
  return Bytes(buf, buf + len);
}

}  // namespace

DisplacedCode relocate_displaced(std::span<const uint8_t> code, uint64_t site, uint64_t at,
                                 const std::string& function) {
  DisplacedCode out;
  std::vector<Decoded> displaced;
  while (out.length < kRedirectSize) {
    uint64_t pc = site + out.length;
    Decoded d;
    if (!decode(code.subspan(out.length), d))
      fail("function `{}': cannot decode the instruction at {:#x} (entry bytes displaced by the jump)",
           function, pc);
    switch (d.ins.mnemonic) {
      case ZYDIS_MNEMONIC_LOOP: case ZYDIS_MNEMONIC_LOOPE: case ZYDIS_MNEMONIC_LOOPNE:
      case ZYDIS_MNEMONIC_JRCXZ: case ZYDIS_MNEMONIC_JECXZ: case ZYDIS_MNEMONIC_XBEGIN:
        fail("function `{}': its entry holds a {} at {:#x}, which has no rel32 form to move", function,
             ZydisMnemonicGetString(d.ins.mnemonic), pc);
      default:
        break;
    }
    if (ends_flow(d) && out.length + d.ins.length < kRedirectSize)
      fail("function `{}': its entry ends after {} bytes (at {:#x}), shorter than the {}-byte jump; "
           "the bytes after it may be reached from elsewhere",
           function, out.length + d.ins.length, pc, kRedirectSize);
    if (out.length > 0) out.boundaries.push_back(out.length);
    out.length += d.ins.length;
    displaced.push_back(d);
  }
  size_t off = 0;
  for (const auto& d : displaced) {
    uint64_t pc = site + off;
    uint64_t to = at + out.old_path.size();
    if (off > 0) out.old_path_offsets.push_back(out.old_path.size());
    Bytes ins;
    if (is_relative_branch(d)) {
      ZyanU64 target = 0;
      ZydisCalcAbsoluteAddress(&d.ins, &d.ops[0], pc, &target);
      if (target > site && target < site + out.length)
        fail("function `{}': the branch at {:#x} goes to {:#x}, inside the bytes the jump displaces",
             function, pc, target);
      ins = reencode(d, pc, to, function);
    } else if (has_rip_operand(d)) {
      ins = reencode(d, pc, to, function);
    } else {
      ins.assign(code.begin() + off, code.begin() + off + d.ins.length);
    }
    out.old_path.insert(out.old_path.end(), ins.begin(), ins.end());
    off += d.ins.length;
  }
  uint64_t back_from = at + out.old_path.size();
  auto jump = redirect_bytes(back_from, site + out.length);
  if (!jump) fail("function `{}': the old path at {:#x} is out of jump range", function, at);
  out.old_path.insert(out.old_path.end(), jump->begin(), jump->end());
  return out;
}

void check_no_branch_into(std::span<const uint8_t> code, uint64_t address, uint64_t site,
                          size_t length, const std::string& function) {
  size_t off = 0;
  while (off < code.size()) {
    Decoded d;
    if (!decode(code.subspan(off), d)) {
      ++off;  // padding or data: no instruction starts here
      continue;
    }
    if (is_relative_branch(d)) {
      ZyanU64 target = 0;
      ZydisCalcAbsoluteAddress(&d.ins, &d.ops[0], address + off, &target);
      if (target > site && target < site + length)
        fail("function `{}': the branch at {:#x} goes to {:#x}, inside the {} bytes the entry jump "
             "replaces; the per-thread models cannot patch it",
             function, address + off, target, length);
    }
    off += d.ins.length;
  }
}

}  // namespace graft::arch
