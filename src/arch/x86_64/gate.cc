#include "arch/x86_64/gate.h"

#include <Zydis/Zydis.h>
#include <sys/user.h>

#include <map>

#include "common/error.h"

namespace graft::arch {

namespace {

// A minimal assembler over Zydis' encoder: fixed-width (rel32, disp32)
// forms, so that a first pass gives every label's offset and a second pass
// the final bytes.
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
      fail("cannot encode a gate instruction ({}) at {:#x}: a target is out of rel32 reach",
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
  Assembler first(g.gate);
  assemble(first, g);  // label offsets (every form has a fixed width)
  Assembler second(g.gate);
  second.restart(first);
  assemble(second, g);
  Bytes code = second.take();
  if (code.size() > kMaxGateSize) fail("gate code is {} bytes, more than {}", code.size(), kMaxGateSize);
  return code;
}

uint64_t thread_pointer(const Registers& r) { return r.fs_base; }

}  // namespace graft::arch
