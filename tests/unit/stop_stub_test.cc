// The stop model's return trap (src/arch/x86_64/stop_stub.cc), run for real
// in this process as it runs in a target whose graft died: a function
// returns into the stub, which makes its system call and goes back to the
// real return address with the return value and the registers `syscall'
// clobbers intact. And the registers graft gives a thread it finds inside
// the stub.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>

#include "arch/x86_64/stop_stub.h"

namespace graft {
namespace {

TEST(StopStub, ReturnsThroughTheStubWithoutGraft) {
  auto* page = static_cast<uint8_t*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(page, MAP_FAILED);
  uint64_t base = reinterpret_cast<uint64_t>(page);
  uint64_t stub = base + 0x400;
  // caller (at 0): call callee; add eax, ecx; add eax, r11d; add eax, edx;
  // ret. Its return address, 5, is where the stub must go back to.
  uint8_t caller[] = {0xe8, 0xfb, 0x00, 0x00, 0x00,  // call 0x100
                      0x01, 0xc8,                    // add eax, ecx
                      0x44, 0x01, 0xd8,              // add eax, r11d
                      0x01, 0xd0,                    // add eax, edx
                      0xc3};
  std::memcpy(page, caller, sizeof caller);
  // callee (at 0x100): its return address -> the stub (what graft does
  // while the thread is stopped), then eax = 5, edx = 9, ecx = 100, r11d =
  // 1000, ret.
  uint8_t callee[] = {0x48, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0,  // movabs rcx, stub
                      0x48, 0x89, 0x0c, 0x24,              // mov [rsp], rcx
                      0xb8, 5, 0, 0, 0,                    // mov eax, 5
                      0xba, 9, 0, 0, 0,                    // mov edx, 9
                      0xb9, 100, 0, 0, 0,                  // mov ecx, 100
                      0x41, 0xbb, 0xe8, 0x03, 0, 0,        // mov r11d, 1000
                      0xc3};
  std::memcpy(callee + 2, &stub, 8);
  std::memcpy(page + 0x100, callee, sizeof callee);
  Bytes code = arch::stop_stub_code(stub, {base + 5, 0x7fff0000, 1234});
  ASSERT_EQ(code.size(), arch::kStopStubSize);
  std::memcpy(page + 0x400, code.data(), code.size());
  ASSERT_EQ(mprotect(page, 4096, PROT_READ | PROT_EXEC), 0);
  EXPECT_EQ(reinterpret_cast<int (*)()>(page)(), 5 + 100 + 1000 + 9);
  munmap(page, 4096);
}

TEST(StopStub, RecoveryReadsWhatGraftWrote) {
  uint64_t at = 0x7f0000001040;
  auto s = arch::parse_stop_stub(arch::stop_stub_code(at, {0x401234, 0x7ffc0000fff8, 4321}));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->original, 0x401234u);
  EXPECT_EQ(s->slot, 0x7ffc0000fff8u);
  EXPECT_EQ(s->tid, 4321u);
  EXPECT_FALSE(arch::parse_stop_stub(arch::unused_stop_stub(at)));
  // Retired: not in use, the return address kept for an unwinder.
  Bytes retired = arch::retired_stop_stub(at, 0x401234);
  EXPECT_FALSE(arch::parse_stop_stub(retired));
  uint64_t kept = 0;
  std::memcpy(&kept, retired.data() + arch::kStopStubOriginal, 8);
  EXPECT_EQ(kept, 0x401234u);
  Bytes changed = arch::stop_stub_code(at, {0x401234, 0x7ffc0000fff8, 4321});
  changed[30] ^= 1;  // the jump reads another word
  EXPECT_FALSE(arch::parse_stop_stub(changed));
  EXPECT_FALSE(arch::parse_stop_stub(arch::stop_stub_code(at, {0x401234, 0x7ffc0000fff4, 4321})));
}

// A thread stopped at each instruction of the stub leaves it with the
// registers it had at the return.
TEST(StopStub, LeavingFromEveryInstruction) {
  const uint64_t at = 0x500000, original = 0x401000, sp = 0x7ffd00001000;
  const uint64_t rax = 11, rcx = 22, r11 = 33;
  struct Case {
    uint64_t offset, rsp;
    uint64_t top[3];
  };
  const uint64_t low = sp - arch::kRedZone;
  const Case cases[] = {
      {0, sp, {0, 0, 0}},                    // nothing done
      {5, low, {0, 0, 0}},                   // below the red zone
      {6, low - 8, {rax, 0, 0}},             // rax pushed
      {7, low - 16, {rcx, rax, 0}},          // and rcx
      {9, low - 24, {r11, rcx, rax}},        // and r11
      {14, low - 24, {r11, rcx, rax}},       // eax = 39 now
      {16, low - 24, {r11, rcx, rax}},       // at the call's stop
      {18, low - 16, {rcx, rax, 0}},         // r11 popped
      {19, low - 8, {rax, 0, 0}},            // rcx popped
      {20, low, {0, 0, 0}},                  // everything popped
      {28, sp, {0, 0, 0}},                   // at the jump
  };
  for (const auto& c : cases) {
    arch::Registers r{};
    r.rip = at + c.offset;
    r.rsp = c.rsp;
    // What the registers hold at that point: the saved values once popped,
    // something else while saved.
    r.rax = c.offset >= 20 || c.offset < 6 ? rax : 39;
    r.rcx = c.offset >= 19 || c.offset < 7 ? rcx : 0xdead;
    r.r11 = c.offset >= 18 || c.offset < 9 ? r11 : 0xbeef;
    r.orig_rax = c.offset == 16 ? 39 : static_cast<unsigned long long>(-1);
    arch::Registers out = arch::leave_stop_stub(r, original, at, c.top);
    EXPECT_EQ(out.rip, original) << c.offset;
    EXPECT_EQ(out.rsp, sp) << c.offset;
    EXPECT_EQ(out.rax, rax) << c.offset;
    EXPECT_EQ(out.rcx, rcx) << c.offset;
    EXPECT_EQ(out.r11, r11) << c.offset;
    EXPECT_EQ(static_cast<long>(out.orig_rax), -1) << c.offset;
  }
}

}  // namespace
}  // namespace graft
