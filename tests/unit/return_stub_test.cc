// The exit stub (src/arch/x86_64/return_stub.cc), run for real in this
// process as it runs in a target whose graft died: a function returns into
// the stub, the int3 goes to graft's SIGTRAP handler, which lists it with
// the destination +1; the stub writes the thread's universe byte and jumps
// to the real return address, with the return value intact.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "arch/x86_64/return_stub.h"
#include "arch/x86_64/trap_handler.h"

namespace graft {
namespace {

long rt_sigaction_raw(const void* act, void* old) { return syscall(SYS_rt_sigaction, SIGTRAP, act, old, 8); }

TEST(ReturnStub, ReturnsThroughTheStubWithoutGraft) {
  // Page 0: code and the stub; page 1: the handler; page 2: data (rw).
  auto* page = static_cast<uint8_t*>(
      mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(page, MAP_FAILED);
  uint64_t base = reinterpret_cast<uint64_t>(page);
  uint64_t stub = base + 0x400, universe = base + 2 * 4096 + 8;
  // caller (at 0): call callee; add eax, 1; ret. The call's return
  // address, 5, is what the stub must go back to.
  uint8_t caller[] = {0xe8, 0xfb, 0x00, 0x00, 0x00,  // call 0x100
                      0x83, 0xc0, 0x01, 0xc3};        // add eax, 1; ret
  std::memcpy(page, caller, sizeof caller);
  // callee (at 0x100): what graft does while the thread is stopped, the
  // callee does itself: its return address -> the stub. Then eax = 5, rdx
  // = 9 (return registers), ret.
  uint8_t callee[] = {0x48, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0,  // movabs rcx, stub
                      0x48, 0x89, 0x0c, 0x24,              // mov [rsp], rcx
                      0xb8, 5, 0, 0, 0,                    // mov eax, 5
                      0xba, 9, 0, 0, 0,                    // mov edx, 9
                      0xc3};
  std::memcpy(callee + 2, &stub, 8);
  std::memcpy(page + 0x100, callee, sizeof callee);
  Bytes code = arch::return_stub_code(stub, universe, 1, {base + 5, 0x7fff0000, 1234});
  ASSERT_EQ(code.size(), arch::kReturnStubSize);
  std::memcpy(page + 0x400, code.data(), code.size());
  uint64_t block = base + 4096;
  Bytes handler = arch::trap_handler_block(block, {{stub, stub + 1}});
  std::memcpy(page + 4096, handler.data(), handler.size());
  uint8_t saved[arch::kKernelSigactionSize] = {};
  ASSERT_EQ(rt_sigaction_raw(nullptr, saved), 0);
  ASSERT_EQ(rt_sigaction_raw(nullptr, page + 4096 + arch::kTrapSavedOffset), 0);
  ASSERT_EQ(mprotect(page, 2 * 4096, PROT_READ | PROT_EXEC), 0);
  Bytes ours = arch::trap_handler_action(block);
  ASSERT_EQ(rt_sigaction_raw(ours.data(), nullptr), 0);

  EXPECT_EQ(page[2 * 4096 + 8], 0);
  EXPECT_EQ(reinterpret_cast<int (*)()>(page)(), 6);
  EXPECT_EQ(page[2 * 4096 + 8], 1);  // the thread's universe
  EXPECT_EQ(page[2 * 4096 + 9], 0);  // and nothing beside it

  rt_sigaction_raw(saved, nullptr);
  munmap(page, 3 * 4096);
}

TEST(ReturnStub, RecoveryReadsWhatGraftWrote) {
  uint64_t at = 0x7f0000001000;
  Bytes code = arch::return_stub_code(at, at + 0x100000, 0, {0x401234, 0x7ffc0000fff8, 4321});
  auto s = arch::parse_return_stub(code, at);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->original, 0x401234u);
  EXPECT_EQ(s->slot, 0x7ffc0000fff8u);
  EXPECT_EQ(s->tid, 4321u);
  EXPECT_FALSE(arch::parse_return_stub(arch::unused_return_stub(), at));
  Bytes changed = code;
  changed[10] ^= 1;  // the jump reads another word
  EXPECT_FALSE(arch::parse_return_stub(changed, at));
  EXPECT_ANY_THROW(arch::return_stub_code(at, at + (uint64_t(1) << 33), 1, {1, 8, 1}));
}

}  // namespace
}  // namespace graft
