// x86-64 relocations: which ELF types a patch may carry, how wide each field
// is, and how each is computed. The only file that knows their semantics.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace graft::arch {

// How the builder must treat a relocation of a compiled patch object.
enum class RelocationClass {
  Direct,       // computed in place from S + A (- P)
  GotRelative,  // needs a GOT slot in the patch image holding S
  Call,         // call/jmp rel32: to a library symbol it goes through a stub
  Unsupported,
};

RelocationClass classify_relocation(uint32_t type);
// Bytes the relocation writes; 0 for a type a patch file may not carry.
size_t relocation_width(uint32_t type);
std::string relocation_name(uint32_t type);

// Width of the field any relocation of a compiled object writes (0 if
// unknown); used to mask relocated bytes when comparing code.
size_t object_field_width(uint32_t type);
// For a PC-relative type, the distance from the field's start to the end of
// the instruction in the usual case where the field ends it (so that
// `addend + bias` is the offset referred to within the symbol); 0 for an
// absolute type. Only a guess for the rarer instructions with a trailing
// immediate: callers use it to tell which object a section-relative
// reference points into, never to compute an address.
int64_t pc_relative_bias(uint32_t type);

// True when `linked` is what the static linker may make of the instruction
// `object` carrying a GOTPCRELX/REX_GOTPCRELX relocation at `field` (its
// offset in the instruction) when the symbol is local: `mov foo@GOTPCREL,
// %reg` becomes `lea foo, %reg`, `call *foo@GOTPCREL` becomes `addr32 call
// foo`, `jmp *foo@GOTPCREL` becomes `jmp foo; nop`. The relocated field
// itself is not compared.
bool is_gotpcrel_relaxation(uint32_t type, std::span<const uint8_t> object,
                            std::span<const uint8_t> linked, size_t field);

// Type used for a PC-relative 32-bit reference (to a GOT slot or a stub) and
// for an absolute 64-bit one (a GOT slot's content).
uint32_t pc32_type();
uint32_t abs64_type();

// Writes the relocation at `where`. P is the address of the field in the
// target, S the symbol's address, A the addend. Throws graft::Error, naming
// `context`, when the value does not fit the field.
void apply_relocation(uint32_t type, uint8_t* where, uint64_t P, uint64_t S, int64_t A,
                      const std::string& context);

// A stub that jumps through a 64-bit slot: `jmp *slot(%rip)` padded to
// kStubSize bytes; its rel32 field is at kStubSlotField, relative to the end
// of the instruction (addend kStubSlotAddend).
constexpr size_t kStubSize = 8;
constexpr size_t kStubSlotField = 2;
constexpr int64_t kStubSlotAddend = -4;
void write_stub(uint8_t* where);

}  // namespace graft::arch
