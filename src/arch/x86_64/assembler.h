// A minimal x86-64 assembler over Zydis' encoder, for the small pieces of
// code graft writes into a target (gates, the trap handler): fixed-width
// (rel32, disp32) forms, so that a first pass gives every label's offset and
// a second pass the final bytes.
#pragma once
#include <Zydis/Zydis.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>

#include "common/error.h"
#include "common/hash.h"

namespace graft::arch {

class Assembler {
 public:
  explicit Assembler(uint64_t base) : base_(base) {}

  static ZydisEncoderOperand reg(ZydisRegister r) {
    ZydisEncoderOperand o{};
    o.type = ZYDIS_OPERAND_TYPE_REGISTER;
    o.reg.value = r;
    return o;
  }
  static ZydisEncoderOperand imm(int64_t v) {
    ZydisEncoderOperand o{};
    o.type = ZYDIS_OPERAND_TYPE_IMMEDIATE;
    o.imm.s = v;
    return o;
  }
  static ZydisEncoderOperand mem(ZydisRegister base, ZydisRegister index, int64_t disp, uint16_t size) {
    ZydisEncoderOperand o{};
    o.type = ZYDIS_OPERAND_TYPE_MEMORY;
    o.mem.base = base;
    o.mem.index = index;
    o.mem.scale = index == ZYDIS_REGISTER_NONE ? 0 : 1;
    o.mem.displacement = disp;
    o.mem.size = size;
    return o;
  }
  // A RIP-relative operand naming an absolute address.
  static ZydisEncoderOperand rip(uint64_t address, uint16_t size) {
    return mem(ZYDIS_REGISTER_RIP, ZYDIS_REGISTER_NONE, static_cast<int64_t>(address), size);
  }

  void label(const char* name) { labels_[name] = out_.size(); }
  uint64_t at(const char* name) const {
    auto it = labels_.find(name);
    return it == labels_.end() ? base_ : base_ + it->second;
  }

  void emit(ZydisMnemonic m, std::initializer_list<ZydisEncoderOperand> ops,
            ZydisInstructionAttributes prefixes = 0) {
    ZydisEncoderRequest req{};
    req.machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
    req.mnemonic = m;
    req.prefixes = prefixes;
    req.operand_count = static_cast<ZyanU8>(ops.size());
    int i = 0;
    for (const auto& o : ops) req.operands[i++] = o;
    if (ops.size() == 1 && ops.begin()->type == ZYDIS_OPERAND_TYPE_IMMEDIATE)
      req.branch_width = ZYDIS_BRANCH_WIDTH_32;
    uint8_t buf[ZYDIS_MAX_INSTRUCTION_LENGTH];
    ZyanUSize len = sizeof buf;
    if (!ZYAN_SUCCESS(ZydisEncoderEncodeInstructionAbsolute(&req, buf, &len, base_ + out_.size())))
      fail("cannot encode an instruction ({}) at {:#x}: a target is out of rel32 reach",
           ZydisMnemonicGetString(m), base_ + out_.size());
    out_.insert(out_.end(), buf, buf + len);
  }
  void branch(ZydisMnemonic m, uint64_t target) { emit(m, {imm(static_cast<int64_t>(target))}); }

  Bytes take() { return std::move(out_); }
  void restart(const Assembler& first_pass) {
    labels_ = first_pass.labels_;
    out_.clear();
  }

 private:
  uint64_t base_;
  Bytes out_;
  std::map<std::string, size_t> labels_;
};

// Runs `emit_all` twice over the same assembler base: the first pass
// finds the labels, the second produces the bytes.
template <typename F>
Bytes assemble_two_pass(uint64_t base, F emit_all) {
  Assembler first(base);
  emit_all(first);
  Assembler second(base);
  second.restart(first);
  emit_all(second);
  return second.take();
}

}  // namespace graft::arch
