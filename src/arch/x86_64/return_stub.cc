#include "arch/x86_64/return_stub.h"

#include <cstring>

#include "arch/x86_64/registers.h"
#include "common/error.h"

namespace graft::arch {

namespace {

constexpr char kMagic[8] = {'G', 'R', 'A', 'F', 'T', 'R', 'E', 'T'};
constexpr size_t kOriginal = kReturnStubOriginal, kSlot = 40, kMagicAt = 48, kTid = 56;
// jmp *disp(%rip) at +8 (6 bytes): the address it reads is +14 + disp.
constexpr int32_t kJumpDisp = static_cast<int32_t>(kOriginal - 14);

void put64(Bytes& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
uint64_t get64(const Bytes& b, size_t at) {
  uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}

}  // namespace

Bytes unused_return_stub() { return Bytes(kReturnStubSize, kBreakpoint); }

Bytes return_stub_code(uint64_t at, uint64_t universe_byte, uint8_t universe, const ReturnStub& s) {
  Bytes b = unused_return_stub();
  // movb $imm8, disp32(%rip): c6 05 disp32 imm8, disp from the next instruction (+8).
  int64_t disp = static_cast<int64_t>(universe_byte) - static_cast<int64_t>(at + 8);
  if (disp < INT32_MIN || disp > INT32_MAX)
    fail("return stub at {:#x}: the universe byte at {:#x} is out of reach", at, universe_byte);
  int32_t d32 = static_cast<int32_t>(disp);
  b[1] = 0xc6;
  b[2] = 0x05;
  std::memcpy(b.data() + 3, &d32, 4);
  b[7] = universe;
  b[8] = 0xff;
  b[9] = 0x25;
  std::memcpy(b.data() + 10, &kJumpDisp, 4);
  put64(b, kOriginal, s.original);
  put64(b, kSlot, s.slot);
  std::memcpy(b.data() + kMagicAt, kMagic, 8);
  put64(b, kTid, s.tid);
  return b;
}

std::optional<ReturnStub> parse_return_stub(const Bytes& code, uint64_t at) {
  (void)at;
  if (code.size() != kReturnStubSize || code[0] != kBreakpoint || code[1] != 0xc6 || code[2] != 0x05 ||
      code[8] != 0xff || code[9] != 0x25 || std::memcmp(code.data() + kMagicAt, kMagic, 8) != 0)
    return std::nullopt;
  int32_t d;
  std::memcpy(&d, code.data() + 10, 4);
  if (d != kJumpDisp) return std::nullopt;
  ReturnStub s;
  s.original = get64(code, kOriginal);
  s.slot = get64(code, kSlot);
  s.tid = static_cast<uint32_t>(get64(code, kTid));
  if (s.original == 0 || s.slot == 0 || s.slot % 8 != 0) return std::nullopt;
  return s;
}

}  // namespace graft::arch
