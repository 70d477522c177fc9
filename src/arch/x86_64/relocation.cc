#include "arch/x86_64/relocation.h"

#include <elf.h>

#include <cstring>
#include <limits>

#include "common/error.h"

namespace graft::arch {

RelocationClass classify_relocation(uint32_t type) {
  switch (type) {
    case R_X86_64_64:
    case R_X86_64_PC32:
    case R_X86_64_32:
    case R_X86_64_32S:
    case R_X86_64_PC64:
      return RelocationClass::Direct;
    case R_X86_64_PLT32:
      return RelocationClass::Call;
    case R_X86_64_GOTPCREL:
    case R_X86_64_GOTPCRELX:
    case R_X86_64_REX_GOTPCRELX:
      return RelocationClass::GotRelative;
    default:
      return RelocationClass::Unsupported;
  }
}

size_t relocation_width(uint32_t type) {
  switch (type) {
    case R_X86_64_64:
    case R_X86_64_PC64:
      return 8;
    case R_X86_64_PC32:
    case R_X86_64_PLT32:
    case R_X86_64_32:
    case R_X86_64_32S:
      return 4;
    default:
      return 0;
  }
}

std::string relocation_name(uint32_t type) {
  switch (type) {
    case R_X86_64_64: return "R_X86_64_64";
    case R_X86_64_PC32: return "R_X86_64_PC32";
    case R_X86_64_PLT32: return "R_X86_64_PLT32";
    case R_X86_64_32: return "R_X86_64_32";
    case R_X86_64_32S: return "R_X86_64_32S";
    case R_X86_64_PC64: return "R_X86_64_PC64";
    case R_X86_64_GOTPCREL: return "R_X86_64_GOTPCREL";
    case R_X86_64_GOTPCRELX: return "R_X86_64_GOTPCRELX";
    case R_X86_64_REX_GOTPCRELX: return "R_X86_64_REX_GOTPCRELX";
    case R_X86_64_TPOFF32: return "R_X86_64_TPOFF32 (thread-local variable)";
    case R_X86_64_GOTTPOFF: return "R_X86_64_GOTTPOFF (thread-local variable)";
    case R_X86_64_TLSGD: return "R_X86_64_TLSGD (thread-local variable)";
    default: return "relocation type " + std::to_string(type);
  }
}

size_t object_field_width(uint32_t type) {
  switch (type) {
    case R_X86_64_64:
    case R_X86_64_PC64:
    case R_X86_64_DTPOFF64:
    case R_X86_64_TPOFF64:
    case R_X86_64_GOTOFF64:
      return 8;
    case R_X86_64_PC32:
    case R_X86_64_PLT32:
    case R_X86_64_32:
    case R_X86_64_32S:
    case R_X86_64_GOTPCREL:
    case R_X86_64_GOTPCRELX:
    case R_X86_64_REX_GOTPCRELX:
    case R_X86_64_GOTPC32:
    case R_X86_64_TPOFF32:
    case R_X86_64_GOTTPOFF:
    case R_X86_64_TLSGD:
    case R_X86_64_TLSLD:
    case R_X86_64_DTPOFF32:
      return 4;
    default:
      return 0;
  }
}

int64_t pc_relative_bias(uint32_t type) {
  switch (type) {
    case R_X86_64_PC32:
    case R_X86_64_PLT32:
    case R_X86_64_GOTPCREL:
    case R_X86_64_GOTPCRELX:
    case R_X86_64_REX_GOTPCRELX:
      return 4;
    case R_X86_64_PC64:
      return 8;
    default:
      return 0;
  }
}

bool is_gotpcrel_relaxation(uint32_t type, std::span<const uint8_t> object,
                            std::span<const uint8_t> linked, size_t field) {
  if (type != R_X86_64_GOTPCRELX && type != R_X86_64_REX_GOTPCRELX) return false;
  if (object.size() != linked.size() || field < 2 || field + 4 > object.size()) return false;
  auto same_outside = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i)
      if (object[i] != linked[i]) return false;
    return true;
  };
  // 8b /r (mov r64, m64) -> 8d /r (lea): the opcode just before ModRM.
  if (object[field - 2] == 0x8b && linked[field - 2] == 0x8d)
    return same_outside(0, field - 2) && object[field - 1] == linked[field - 1] &&
           same_outside(field + 4, object.size());
  // ff 15 (call *m) -> 67 e8 (addr32 call rel32); ff 25 (jmp *m) -> e9 rel32 90.
  if (field == 2 && object.size() == 6 && object[0] == 0xff && object[1] == 0x15)
    return linked[0] == 0x67 && linked[1] == 0xe8;
  if (field == 2 && object.size() == 6 && object[0] == 0xff && object[1] == 0x25)
    return linked[0] == 0xe9 && linked[5] == 0x90;
  return false;
}

uint32_t pc32_type() { return R_X86_64_PC32; }
uint32_t abs64_type() { return R_X86_64_64; }

void apply_relocation(uint32_t type, uint8_t* where, uint64_t P, uint64_t S, int64_t A,
                      const std::string& context) {
  auto store32 = [&](int64_t v, bool is_signed) {
    bool fits = is_signed ? (v >= std::numeric_limits<int32_t>::min() &&
                             v <= std::numeric_limits<int32_t>::max())
                          : (v >= 0 && v <= std::numeric_limits<uint32_t>::max());
    if (!fits)
      fail("{}: {} value {:#x} does not fit in 32 bits", context, relocation_name(type),
           static_cast<uint64_t>(v));
    uint32_t u = static_cast<uint32_t>(v);
    std::memcpy(where, &u, 4);
  };
  switch (type) {
    case R_X86_64_64: {
      uint64_t v = S + A;
      std::memcpy(where, &v, 8);
      return;
    }
    case R_X86_64_PC64: {
      uint64_t v = S + A - P;
      std::memcpy(where, &v, 8);
      return;
    }
    case R_X86_64_PC32:
    case R_X86_64_PLT32:
      return store32(static_cast<int64_t>(S + A - P), true);
    case R_X86_64_32:
      return store32(static_cast<int64_t>(S + A), false);
    case R_X86_64_32S:
      return store32(static_cast<int64_t>(S + A), true);
    default:
      fail("{}: {} is not supported", context, relocation_name(type));
  }
}

void write_stub(uint8_t* where) {
  // ff 25 <rel32>   jmp *slot(%rip)
  // 0f 0b           ud2 (never reached; pads to 8 bytes)
  static const uint8_t stub[kStubSize] = {0xff, 0x25, 0, 0, 0, 0, 0x0f, 0x0b};
  std::memcpy(where, stub, kStubSize);
}

}  // namespace graft::arch
