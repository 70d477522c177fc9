// graft's SIGTRAP handler (src/arch/x86_64/trap_handler.cc), run for real
// in this process: an int3 at a listed site continues at its destination;
// a foreign int3 goes to the action the process had before.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "arch/x86_64/gate.h"
#include "arch/x86_64/trap_handler.h"

namespace graft {
namespace {

volatile sig_atomic_t foreign_traps = 0;
void own_handler(int, siginfo_t*, void*) { foreign_traps = foreign_traps + 1; }

long rt_sigaction_raw(const void* act, void* old) {
  return syscall(SYS_rt_sigaction, SIGTRAP, act, old, 8);
}

class TrapHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    page_ = static_cast<uint8_t*>(
        mmap(nullptr, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(page_, MAP_FAILED);
    ASSERT_EQ(rt_sigaction_raw(nullptr, saved_), 0);
  }
  void TearDown() override {
    rt_sigaction_raw(saved_, nullptr);
    munmap(page_, 2 * 4096);
  }

  // Code page: `site' = int3 then `mov eax, 1; ret' (what runs if the trap
  // is skipped); `to' = `mov eax, 42; ret'; `foreign' = int3; mov eax, 7;
  // ret. The handler block on the second page.
  void build(bool chain_to_own) {
    uint8_t code[] = {0xcc, 0xb8, 1, 0, 0, 0, 0xc3, 0x90,   // site
                      0xb8, 42, 0, 0, 0, 0xc3, 0x90, 0x90,  // to
                      0xcc, 0xb8, 7, 0, 0, 0, 0xc3};        // foreign
    std::memcpy(page_, code, sizeof code);
    uint64_t block = reinterpret_cast<uint64_t>(page_ + 4096);
    Bytes b = arch::trap_handler_block(block, {{reinterpret_cast<uint64_t>(page_), reinterpret_cast<uint64_t>(page_ + 8)}});
    std::memcpy(page_ + 4096, b.data(), b.size());
    if (chain_to_own) {
      struct sigaction sa{};
      sa.sa_sigaction = own_handler;
      sa.sa_flags = SA_SIGINFO;
      ASSERT_EQ(sigaction(SIGTRAP, &sa, nullptr), 0);
    }
    // What graft does in the target: save the process's own action, install.
    ASSERT_EQ(rt_sigaction_raw(nullptr, page_ + 4096 + arch::kTrapSavedOffset), 0);
    ASSERT_EQ(mprotect(page_, 2 * 4096, PROT_READ | PROT_EXEC), 0);
    Bytes ours = arch::trap_handler_action(block);
    ASSERT_EQ(arch::sigaction_handler(ours), block);
    ASSERT_EQ(rt_sigaction_raw(ours.data(), nullptr), 0);
  }
  int call(size_t offset) { return reinterpret_cast<int (*)()>(page_ + offset)(); }

  uint8_t* page_ = nullptr;
  uint8_t saved_[arch::kKernelSigactionSize] = {};
};

TEST_F(TrapHandlerTest, ListedSiteContinuesAtItsDestination) {
  build(false);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(call(0), 42);
}

// graft moves a thread stopped on the SIGTRAP of a site to its destination
// before it discards the signal; killed in between, the signal arrives with
// the thread there already: it goes on.
TEST_F(TrapHandlerTest, ThreadAlreadyAtADestinationGoesOn) {
  build(false);
  // At 32: tgkill(rdi, rsi, rdx) then, where the signal finds the thread
  // (listed as a destination below), mov eax, 43; ret.
  uint8_t raise[] = {0xb8, SYS_tgkill, 0, 0, 0, 0x0f, 0x05, 0xb8, 43, 0, 0, 0, 0xc3};
  ASSERT_EQ(mprotect(page_, 2 * 4096, PROT_READ | PROT_WRITE), 0);
  std::memcpy(page_ + 32, raise, sizeof raise);
  uint64_t block = reinterpret_cast<uint64_t>(page_ + 4096);
  Bytes b = arch::trap_handler_block(block, {{reinterpret_cast<uint64_t>(page_), reinterpret_cast<uint64_t>(page_ + 8)},
                                             {reinterpret_cast<uint64_t>(page_ + 64), reinterpret_cast<uint64_t>(page_ + 39)}});
  std::memcpy(page_ + 4096, b.data(), arch::kTrapSavedOffset);  // the saved action stays
  std::memcpy(page_ + 4096 + arch::kTrapTableOffset, b.data() + arch::kTrapTableOffset, 32);
  ASSERT_EQ(mprotect(page_, 2 * 4096, PROT_READ | PROT_EXEC), 0);
  auto raise_trap = reinterpret_cast<int (*)(long, long, long)>(page_ + 32);
  EXPECT_EQ(raise_trap(getpid(), syscall(SYS_gettid), SIGTRAP), 43);
  EXPECT_EQ(call(0), 42);
}

TEST_F(TrapHandlerTest, ForeignTrapGoesToTheProcesssOwnHandler) {
  build(true);
  foreign_traps = 0;
  EXPECT_EQ(call(16), 7);  // own_handler ran, then execution went on after the int3
  EXPECT_EQ(foreign_traps, 1);
  EXPECT_EQ(call(0), 42);  // and the handler is still graft's
}

TEST_F(TrapHandlerTest, ForeignTrapWithoutOwnHandlerDiesOfSigtrap) {
  EXPECT_EXIT(
      {
        build(false);
        call(16);
      },
      ::testing::KilledBySignal(SIGTRAP), "");
}

TEST(TrapHandlerBlock, RefusesMisalignedOrEmptySites) {
  EXPECT_ANY_THROW(arch::trap_handler_block(0x1008, {}));
  EXPECT_ANY_THROW(arch::trap_handler_block(0x1000, {{0, 0x2000}}));
  EXPECT_EQ(arch::trap_handler_size(3), arch::kTrapTableOffset + 48);
}

// The stop model's switch gate, run in-process: one byte sends every call
// to the old or the new function.
TEST(SwitchGate, TheFlagChoosesOldOrNew) {
  auto* page = static_cast<uint8_t*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(page, MAP_FAILED);
  uint64_t base = reinterpret_cast<uint64_t>(page);
  uint8_t old_fn[] = {0xb8, 1, 0, 0, 0, 0xc3}, new_fn[] = {0xb8, 2, 0, 0, 0, 0xc3};
  std::memcpy(page + 64, old_fn, sizeof old_fn);
  std::memcpy(page + 96, new_fn, sizeof new_fn);
  Bytes gate = arch::switch_gate_code(base + 128, base, base + 96, base + 64);
  ASSERT_LE(gate.size(), arch::kSwitchGateSize);
  std::memcpy(page + 128, gate.data(), gate.size());
  auto call = reinterpret_cast<int (*)()>(page + 128);
  page[0] = 0;
  ASSERT_EQ(mprotect(page, 4096, PROT_READ | PROT_EXEC), 0);
  EXPECT_EQ(call(), 1);
  ASSERT_EQ(mprotect(page, 4096, PROT_READ | PROT_WRITE), 0);
  page[0] = 1;
  ASSERT_EQ(mprotect(page, 4096, PROT_READ | PROT_EXEC), 0);
  EXPECT_EQ(call(), 2);
  munmap(page, 4096);
}

}  // namespace
}  // namespace graft
