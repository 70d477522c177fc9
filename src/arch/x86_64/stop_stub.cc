#include "arch/x86_64/stop_stub.h"

#include <cstring>

namespace graft::arch {

namespace {

constexpr uint8_t kCode[] = {
    0x48, 0x8d, 0x64, 0x24, 0x80,                    // +0  lea -0x80(%rsp),%rsp
    0x50,                                            // +5  push %rax
    0x51,                                            // +6  push %rcx
    0x41, 0x53,                                      // +7  push %r11
    0xb8, 0x27, 0x00, 0x00, 0x00,                    // +9  mov $39,%eax
    0x0f, 0x05,                                      // +14 syscall
    0x41, 0x5b,                                      // +16 pop %r11
    0x59,                                            // +18 pop %rcx
    0x58,                                            // +19 pop %rax
    0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00,  // +20 lea 0x80(%rsp),%rsp
    0xff, 0x25, 0x06, 0x00, 0x00, 0x00,              // +28 jmp *6(%rip): +40
};
constexpr size_t kOriginal = kStopStubOriginal, kSlot = 48, kTid = 56;
static_assert(sizeof kCode <= kOriginal);

void put64(Bytes& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
uint64_t get64(const Bytes& b, size_t at) {
  uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}

// What the stub has done when the thread is at `offset`: the words it has
// pushed (rax, rcx, r11 in that order) and whether the stack pointer is
// below the red zone.
struct StubState {
  int pushed = 0;
  bool lowered = false;
};
StubState state_at(uint64_t offset) {
  if (offset < 5) return {0, false};
  if (offset < 6) return {0, true};
  if (offset < 7) return {1, true};
  if (offset < 9) return {2, true};
  if (offset < 18) return {3, true};
  if (offset < 19) return {2, true};
  if (offset < 20) return {1, true};
  if (offset < 28) return {0, true};
  return {0, false};
}

}  // namespace

Bytes unused_stop_stub(uint64_t at) {
  (void)at;  // the code is position-independent
  Bytes b(kStopStubSize, kBreakpoint);
  std::memcpy(b.data(), kCode, sizeof kCode);
  put64(b, kOriginal, 0);
  put64(b, kSlot, 0);
  put64(b, kTid, 0);
  return b;
}

Bytes retired_stop_stub(uint64_t at, uint64_t original) {
  Bytes b = unused_stop_stub(at);
  put64(b, kOriginal, original);
  return b;
}

Bytes stop_stub_code(uint64_t at, const ReturnStub& s) {
  Bytes b = unused_stop_stub(at);
  put64(b, kOriginal, s.original);
  put64(b, kSlot, s.slot);
  put64(b, kTid, s.tid);
  return b;
}

std::optional<ReturnStub> parse_stop_stub(const Bytes& code) {
  if (code.size() != kStopStubSize || std::memcmp(code.data(), kCode, sizeof kCode) != 0) return std::nullopt;
  ReturnStub s;
  s.original = get64(code, kOriginal);
  s.slot = get64(code, kSlot);
  uint64_t tid = get64(code, kTid);
  if (s.original == 0 || s.slot == 0 || s.slot % 8 != 0 || tid == 0 || tid > INT32_MAX) return std::nullopt;
  s.tid = static_cast<uint32_t>(tid);
  return s;
}

Registers leave_stop_stub(const Registers& r, uint64_t original, uint64_t at, const uint64_t (&top)[3]) {
  Registers out = r;
  StubState s = state_at(r.rip - at);
  unsigned long long* saved[3] = {&out.rax, &out.rcx, &out.r11};
  for (int i = 0; i < s.pushed; ++i) *saved[i] = top[s.pushed - 1 - i];
  out.rsp = r.rsp + 8 * static_cast<uint64_t>(s.pushed) + (s.lowered ? kRedZone : 0);
  out.rip = original;
  out.orig_rax = static_cast<unsigned long long>(-1);
  return out;
}

}  // namespace graft::arch
