// x86-64 instruction facts for register-usage analysis, decoded with Zydis:
// which registers an instruction reads and writes, and where control goes.
// Registers are a RegisterSet (arch/x86_64/register_set.h).
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "arch/x86_64/register_set.h"

namespace graft::arch {

struct Instruction {
  enum class Flow { Next, Call, Jump, ConditionalJump, Return, IndirectCall, IndirectJump, Stop };
  uint64_t address = 0;
  uint8_t length = 0;
  // What the instruction does, whatever its encoding (a Zydis mnemonic):
  // `jne rel8' and `jne rel32' have the same operation.
  uint32_t operation = 0;
  bool padding = false;  // a no-op (nop, nopw, nopl): alignment the assembler adds
  Flow flow = Flow::Next;
  std::optional<uint64_t> target;  // direct branch target
  RegisterSet reads = 0;
  RegisterSet writes = 0;     // any write (a clobber)
  RegisterSet overwrites = 0; // writes that replace the whole value
  bool wide_vector = false;   // names a ymm or zmm register (more than 128 bits)
  bool wide_memory = false;   // a memory operand of 16 bytes or more (may need alignment)
  // Registers read as values (register operands), and as the base or
  // index of a memory operand (or of lea's address).
  RegisterSet value_reads = 0, address_reads = 0;
  bool memory_write = false;  // writes a memory operand it names
  bool stack_write = false;   // writes memory it does not name (a push's slot, a call's)
  bool takes_address = false; // computes a memory operand's address without accessing it (lea)
  // How the instruction moves %rsp: push -8, pop +8, sub/add/lea with a
  // constant; nullopt if it sets %rsp some other way (mov, leave, and).
  // Calls and returns count as 0 (the callee pops what the call pushed).
  std::optional<int64_t> stack_change = 0;
};

// Decodes one instruction at `address`; nullopt if the bytes are not one.
std::optional<Instruction> decode_instruction(std::span<const uint8_t> code, uint64_t address);

// A function's instructions in order, its bytes `code` decoded from offset
// 0 (GCC puts no data in code on x86-64); `undecodable`: the offset of the
// first bytes that are not an instruction, where decoding stopped.
struct DecodedFunction {
  std::vector<Instruction> instructions;
  std::optional<uint64_t> undecodable;
  // The instruction whose bytes hold offset `at`; nullptr if none does.
  const Instruction* containing(uint64_t at) const;
};
DecodedFunction decode_function(std::span<const uint8_t> code);

}  // namespace graft::arch
