#include <elf.h>
#include <gtest/gtest.h>

#include "arch/x86_64/immediates.h"
#include "arch/x86_64/jump.h"
#include "arch/x86_64/registers.h"
#include "arch/x86_64/relocation.h"
#include "arch/x86_64/sigreturn_frame.h"
#include "arch/x86_64/syscall_restart.h"
#include "common/error.h"

namespace graft {
namespace {

TEST(SyscallRestart, EpollWaitEndedByAStopRestarts) {
  arch::Registers r{};
  r.orig_rax = 232;  // epoll_wait
  r.rax = static_cast<uint64_t>(-4);  // EINTR
  r.rip = 0x1002;
  ASSERT_TRUE(arch::restart_call_ended_by_stop(r));
  EXPECT_EQ(static_cast<long>(r.rax), -514);  // ERESTARTNOHAND
  // Then applied as the kernel does when no handler runs: the call again.
  arch::Registers again = arch::with_restart_applied(r);
  EXPECT_EQ(again.rax, 232u);
  EXPECT_EQ(again.rip, 0x1000u);
  // Not twice, not a call that ended otherwise, not read() (its EINTR
  // is never the stop's: a stop makes it report ERESTARTSYS).
  EXPECT_FALSE(arch::restart_call_ended_by_stop(r));
  arch::Registers done{};
  done.orig_rax = 232;
  done.rax = 0;
  EXPECT_FALSE(arch::restart_call_ended_by_stop(done));
  arch::Registers read{};
  read.orig_rax = 0;
  read.rax = static_cast<uint64_t>(-4);
  EXPECT_FALSE(arch::restart_call_ended_by_stop(read));
  arch::Registers user{};
  user.orig_rax = static_cast<uint64_t>(-1);
  user.rax = static_cast<uint64_t>(-4);
  EXPECT_FALSE(arch::restart_call_ended_by_stop(user));
}

TEST(Immediates, OnlyImmediatesMayDiffer) {
  // mov $412,%edx; call rel32 0; ret  against  mov $415,%edx; call rel32 0; ret
  const uint8_t a[] = {0xba, 0x9c, 0x01, 0x00, 0x00, 0xe8, 0, 0, 0, 0, 0xc3};
  const uint8_t b[] = {0xba, 0x9f, 0x01, 0x00, 0x00, 0xe8, 0, 0, 0, 0, 0xc3};
  auto c = arch::immediate_changes(a, b);
  ASSERT_TRUE(c);
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].offset, 0u);
  EXPECT_EQ((*c)[0].before, 412);
  EXPECT_EQ((*c)[0].after, 415);
  EXPECT_TRUE(arch::immediate_changes(a, a)->empty());
  // Another register (mov $412,%ecx): not an immediate change.
  const uint8_t d[] = {0xb9, 0x9c, 0x01, 0x00, 0x00, 0xe8, 0, 0, 0, 0, 0xc3};
  EXPECT_FALSE(arch::immediate_changes(a, d));
  // Another branch target (call rel32 4): a layout change.
  const uint8_t e[] = {0xba, 0x9c, 0x01, 0x00, 0x00, 0xe8, 4, 0, 0, 0, 0xc3};
  EXPECT_FALSE(arch::immediate_changes(a, e));
  // Another length.
  EXPECT_FALSE(arch::immediate_changes(std::span(a, 10), std::span(b, 11)));
}

TEST(Jump, Rel32Encoding) {
  auto b = arch::redirect_bytes(0x1000, 0x2000);
  ASSERT_TRUE(b);
  // e9 <0x2000 - 0x1005>
  EXPECT_EQ(*b, (Bytes{0xe9, 0xfb, 0x0f, 0x00, 0x00}));
  EXPECT_FALSE(arch::redirect_bytes(0x1000, uint64_t(1) << 40));
}

TEST(Jump, SiteSkipsEndbr64) {
  uint8_t endbr[] = {0xf3, 0x0f, 0x1e, 0xfa, 0x55};
  uint8_t plain[] = {0x55, 0x48, 0x89, 0xe5};
  EXPECT_EQ(arch::patch_site_offset(endbr), 4u);
  EXPECT_EQ(arch::patch_site_offset(plain), 0u);
}

TEST(Relocation, Pc32RangeIsChecked) {
  uint8_t field[8] = {};
  arch::apply_relocation(R_X86_64_PC32, field, 0x1000, 0x2000, -4, "test");
  int32_t v;
  std::memcpy(&v, field, 4);
  EXPECT_EQ(v, 0x2000 - 4 - 0x1000);
  EXPECT_THROW(arch::apply_relocation(R_X86_64_PC32, field, 0x1000, uint64_t(1) << 33, 0, "test"),
               Error);
}

TEST(Relocation, Abs32Unsigned) {
  uint8_t field[4] = {};
  EXPECT_THROW(arch::apply_relocation(R_X86_64_32, field, 0, uint64_t(1) << 32, 0, "t"), Error);
  arch::apply_relocation(R_X86_64_32, field, 0, 0x401000, 0, "t");
}

TEST(Relocation, Classes) {
  EXPECT_EQ(arch::classify_relocation(R_X86_64_PLT32), arch::RelocationClass::Call);
  EXPECT_EQ(arch::classify_relocation(R_X86_64_REX_GOTPCRELX), arch::RelocationClass::GotRelative);
  EXPECT_EQ(arch::classify_relocation(R_X86_64_TPOFF32), arch::RelocationClass::Unsupported);
}

TEST(Call, FrameIsAlignedAsAfterACall) {
  // At the callee's entry rsp + 8 is 16-aligned, whatever the thread's rsp.
  for (uint64_t top : {0x7ffc1000ull, 0x7ffc1008ull, 0x7ffc100full, 0x7ffc1001ull}) {
    arch::Registers r{};
    r.orig_rax = 0;  // in a system call
    r.eflags = 0x400 | 0x202;
    auto frame = arch::prepare_call(r, 0x401000, top, {1, 2, 3, 4, 5, 6});
    EXPECT_EQ((r.rsp + 8) % 16, 0u) << std::hex << top;
    EXPECT_EQ(frame.return_address_slot, r.rsp);
    EXPECT_LE(r.rsp + 8, top);
    EXPECT_EQ(r.rip, 0x401000u);
    EXPECT_EQ(r.rdi, 1u);
    EXPECT_EQ(r.r9, 6u);
    EXPECT_EQ(r.orig_rax, static_cast<uint64_t>(-1));  // no restart on resume
    EXPECT_EQ(r.eflags & 0x400, 0u);                   // DF clear
  }
}

}  // namespace
}  // namespace graft
