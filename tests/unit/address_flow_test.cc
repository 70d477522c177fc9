// What a function does with the address of a variable it computes with
// lea (src/arch/x86_64/address_flow.cc), on hand-assembled functions: the
// builder carries a changed variable only if no code writes it.
#include <gtest/gtest.h>

#include "arch/x86_64/address_flow.h"

namespace graft {
namespace {

std::optional<std::string> use(std::vector<uint8_t> code, std::set<uint64_t> relocated = {3}) {
  return arch::address_use(arch::decode_function(code), 0, relocated);
}

TEST(AddressFlow, ReadingAnElementIsOnlyARead) {
  // lea table(%rip),%rax; mov (%rax,%rdi,8),%rax; ret
  EXPECT_EQ(use({0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x48, 0x8b, 0x04, 0xf8, 0xc3}), std::nullopt);
}

TEST(AddressFlow, AStoreThroughItIsAWrite) {
  // lea table(%rip),%rax; movl $1,(%rax); ret
  EXPECT_EQ(use({0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xc7, 0x00, 1, 0, 0, 0, 0xc3}), "may write through it at +0x7");
}

TEST(AddressFlow, ReturningOrStoringOrPassingItLetsItEscape) {
  // lea table(%rip),%rax; ret
  EXPECT_EQ(use({0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xc3}), "may return it at +0x7");
  // lea table(%rip),%rax; mov %rax,(%rsi); ret
  EXPECT_EQ(use({0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x48, 0x89, 0x06, 0xc3}), "stores it in memory at +0x7");
  // lea table(%rip),%rdi; call f (relocated); ret
  EXPECT_EQ(use({0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0xc3}, {3, 8}),
            "may pass it to another function at +0x7");
  // lea table(%rip),%rdi; jmp f (a tail call, relocated)
  EXPECT_EQ(use({0x48, 0x8d, 0x3d, 0, 0, 0, 0, 0xe9, 0, 0, 0, 0}, {3, 8}),
            "may pass it to another function at +0x7");
}

TEST(AddressFlow, ALoopThatCallsWithEachElementOnlyReads) {
  // The address in callee-saved rbx across calls that get the elements:
  //  0 lea table(%rip),%rbx     7 mov (%rbx),%rdi      10 call f (relocated)
  // 15 add $8,%rbx             19 cmpq $0,(%rbx)       23 jne 7
  // 25 ret
  std::vector<uint8_t> code = {0x48, 0x8d, 0x1d, 0, 0, 0, 0, 0x48, 0x8b, 0x3b, 0xe8, 0, 0, 0, 0,
                               0x48, 0x83, 0xc3, 0x08, 0x48, 0x83, 0x3b, 0x00, 0x75, 0xee, 0xc3};
  EXPECT_EQ(use(code, {3, 11}), std::nullopt);
  // The same loop writing each element first: movq $0,(%rbx) at 7.
  std::vector<uint8_t> writes = {0x48, 0x8d, 0x1d, 0, 0, 0, 0, 0x48, 0xc7, 0x03, 0, 0, 0, 0, 0xc3};
  EXPECT_EQ(use(writes), "may write through it at +0x7");
}

TEST(AddressFlow, ARegisterOverwrittenNoLongerHoldsIt) {
  // lea table(%rip),%rax; mov (%rax),%eax; ret: rax holds the contents.
  EXPECT_EQ(use({0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x8b, 0x00, 0xc3}), std::nullopt);
  // lea table(%rip),%rax; add $8,%rax; ret: arithmetic on it still is it.
  EXPECT_EQ(use({0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x48, 0x83, 0xc0, 0x08, 0xc3}), "may return it at +0xb");
}

}  // namespace
}  // namespace graft
