// The entry thunk (src/arch/x86_64/entry_thunk.cc): its instructions decoded
// with Zydis (frame, alignment at the call, saves and restores), then run
// for real in this process between a caller that keeps values in
// call-clobbered registers and a replacement that overwrites them all and
// reads its stack arguments; then a C++ exception thrown by the replacement
// unwinds through the thunk's FDE. Also the calling-convention facts the
// builder gives the thunk.
#include <Zydis/Zydis.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <variant>
#include <vector>

#include "arch/x86_64/calling_convention.h"
#include "arch/x86_64/entry_thunk.h"
#include "common/error.h"

extern "C" void __register_frame(void*);
extern "C" void __deregister_frame(void*);

namespace graft {
namespace {

constexpr arch::RegisterSet gpr(int i) { return arch::RegisterSet(1) << i; }
constexpr arch::RegisterSet xmm(int i) { return arch::RegisterSet(1) << (16 + i); }
constexpr int kRdx = 2, kRsi = 6, kR11 = 11;

struct Decoded {
  ZydisDecodedInstruction ins;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  uint64_t offset;
};

std::vector<Decoded> decode(const Bytes& code) {
  ZydisDecoder d;
  ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  std::vector<Decoded> out;
  for (uint64_t off = 0; off < code.size();) {
    Decoded x;
    x.offset = off;
    EXPECT_TRUE(ZYAN_SUCCESS(ZydisDecoderDecodeFull(&d, code.data() + off, code.size() - off, &x.ins, x.ops)))
        << "at " << off;
    if (::testing::Test::HasFailure()) break;
    off += x.ins.length;
    out.push_back(x);
  }
  return out;
}

TEST(EntryThunk, InstructionsFrameAndAlignment) {
  for (uint64_t stack : {0u, 8u, 16u, 24u}) {
    SCOPED_TRACE(stack);
    arch::EntryThunk t = arch::entry_thunk(gpr(kRdx) | gpr(kRsi) | gpr(kR11) | xmm(2) | xmm(9), stack);
    auto ins = decode(t.code);
    ASSERT_GE(ins.size(), 6u);
    EXPECT_EQ(ins[0].ins.mnemonic, ZYDIS_MNEMONIC_PUSH);
    EXPECT_EQ(ins[0].ops[0].reg.value, ZYDIS_REGISTER_RBP);
    EXPECT_EQ(ins[1].ins.mnemonic, ZYDIS_MNEMONIC_MOV);
    EXPECT_EQ(ins[ins.size() - 2].ins.mnemonic, ZYDIS_MNEMONIC_LEAVE);
    EXPECT_EQ(ins.back().ins.mnemonic, ZYDIS_MNEMONIC_RET);
    // Follow %rsp (mod 16) from entry, where the call pushed 8 bytes (or
    // not: the thunk realigns).
    int64_t rsp = -8, frame = 0;
    std::vector<ZydisRegister> saved, restored;
    std::vector<int64_t> slots, copied;
    bool called = false;
    for (const auto& x : ins) {
      switch (x.ins.mnemonic) {
        case ZYDIS_MNEMONIC_PUSH:
          rsp -= 8;
          if (x.ops[0].type == ZYDIS_OPERAND_TYPE_MEMORY) copied.push_back(x.ops[0].mem.disp.value);
          break;
        case ZYDIS_MNEMONIC_SUB:
          if (!frame) frame = x.ops[1].imm.value.s;
          rsp -= x.ops[1].imm.value.s;
          break;
        case ZYDIS_MNEMONIC_AND:
          EXPECT_EQ(x.ops[1].imm.value.s, -16);
          rsp = 0;  // whatever it was
          break;
        case ZYDIS_MNEMONIC_CALL:
          EXPECT_EQ(((rsp % 16) + 16) % 16, 0) << "misaligned at the call";
          EXPECT_EQ(x.offset + 1, t.call_field);
          EXPECT_EQ(x.ins.length, 5);
          called = true;
          break;
        case ZYDIS_MNEMONIC_MOV:
        case ZYDIS_MNEMONIC_MOVUPS:
          if (x.ops[0].type == ZYDIS_OPERAND_TYPE_MEMORY) {
            EXPECT_EQ(x.ops[0].mem.base, ZYDIS_REGISTER_RBP);
            EXPECT_FALSE(called);
            saved.push_back(x.ops[1].reg.value);
            slots.push_back(x.ops[0].mem.disp.value);
            // Inside the frame, below the saved %rbp.
            EXPECT_LE(x.ops[0].mem.disp.value + x.ops[0].size / 8, 0);
            EXPECT_GE(x.ops[0].mem.disp.value, -frame);
          } else if (x.ops[1].type == ZYDIS_OPERAND_TYPE_MEMORY) {
            EXPECT_TRUE(called);
            restored.push_back(x.ops[0].reg.value);
          }
          break;
        default:
          break;
      }
    }
    EXPECT_TRUE(called);
    std::vector<ZydisRegister> want = {ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_RSI, ZYDIS_REGISTER_R11,
                                       ZYDIS_REGISTER_XMM2, ZYDIS_REGISTER_XMM9};
    EXPECT_EQ(saved, want);
    EXPECT_EQ(restored, want);
    // Slots do not overlap: 8 bytes apart for general registers, 16 for vectors.
    for (size_t i = 0; i < slots.size(); ++i)
      for (size_t j = i + 1; j < slots.size(); ++j)
        EXPECT_GE(std::abs(slots[i] - slots[j]), i < 3 && j < 3 ? 8 : 16);
    // The stack arguments, from the last (highest) down to the first at %rbp+16.
    std::vector<int64_t> words;
    for (int64_t off = 16 + static_cast<int64_t>(stack) - 8; off >= 16; off -= 8) words.push_back(off);
    EXPECT_EQ(copied, words);
  }
}

TEST(EntryThunk, RefusesWhatItCannotDo) {
  EXPECT_THROW(arch::entry_thunk(gpr(3), 0), Error);  // rbx is callee-saved
  EXPECT_THROW(arch::entry_thunk(gpr(kRsi), 12), Error);
  EXPECT_THROW(arch::entry_thunk(gpr(kRsi), arch::kMaxThunkStackArgumentBytes + 8), Error);
}

// A replacement of `long f(long a, ..., long h)' (g and h on the stack):
// checks that the stack is aligned as after a call, returns
// a+b+c+d+e+f + 10g + 100h, and overwrites every call-clobbered register
// but rax (and its own stack argument, which a callee may).
asm(R"(
  .text
  .globl graft_test_clobbering_replacement
  .type graft_test_clobbering_replacement, @function
graft_test_clobbering_replacement:
  lea 8(%rsp), %rax
  test $15, %al
  jz 1f
  ud2
1:
  lea (%rdi,%rsi), %rax
  add %rdx, %rax
  add %rcx, %rax
  add %r8, %rax
  add %r9, %rax
  imul $10, 8(%rsp), %r10
  add %r10, %rax
  imul $100, 16(%rsp), %r10
  add %r10, %rax
  movq $-1, 8(%rsp)
  mov $-1, %rcx
  mov $-1, %rdx
  mov $-1, %rsi
  mov $-1, %rdi
  mov $-1, %r8
  mov $-1, %r9
  mov $-1, %r10
  mov $-1, %r11
  pcmpeqd %xmm2, %xmm2
  pcmpeqd %xmm9, %xmm9
  ret
  .size graft_test_clobbering_replacement, .-graft_test_clobbering_replacement
)");
extern "C" long graft_test_clobbering_replacement(long, long, long, long, long, long, long, long);

// Throws for a < 0; otherwise what the replacement above returns.
extern "C" long graft_test_throwing_replacement(long a, long b, long c, long d, long e, long f, long g,
                                                long h) {
  if (a < 0) throw std::runtime_error("thrown through the thunk");
  return a + b + c + d + e + f + 10 * g + 100 * h;
}

// The thunk in a page of its own, its call going to `target' through an
// absolute jump at +0x400, its CIE and FDE at +0x800 registered with libgcc.
class LiveThunk {
 public:
  LiveThunk(arch::RegisterSet preserved, uint64_t stack, const void* target) {
    page_ = static_cast<uint8_t*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(page_, MAP_FAILED);
    arch::EntryThunk t = arch::entry_thunk(preserved, stack);
    std::memcpy(page_, t.code.data(), t.code.size());
    int32_t rel = static_cast<int32_t>(0x400 - (t.call_field + 4));
    std::memcpy(page_ + t.call_field, &rel, 4);
    const uint8_t jmp[6] = {0xff, 0x25, 0, 0, 0, 0};  // jmp *0(%rip)
    std::memcpy(page_ + 0x400, jmp, 6);
    std::memcpy(page_ + 0x406, &target, 8);
    std::memcpy(page_ + 0x800, t.cfi.data(), t.cfi.size());
    int32_t pc_begin = static_cast<int32_t>(0 - (0x800 + t.cfi_pc_begin));
    std::memcpy(page_ + 0x800 + t.cfi_pc_begin, &pc_begin, 4);
    std::memset(page_ + 0x800 + t.cfi.size(), 0, 4);  // end of the list
    EXPECT_EQ(mprotect(page_, 4096, PROT_READ | PROT_EXEC), 0);
    __register_frame(page_ + 0x800);
  }
  ~LiveThunk() {
    __deregister_frame(page_ + 0x800);
    munmap(page_, 4096);
  }
  void* entry() const { return page_; }

 private:
  uint8_t* page_;
};

struct Kept {
  long result, rsi, rdx, r11;
  double xmm2;
};

// Calls `fn' with a..f = 1..6 in registers, g = 7, h = 8 on the stack, as
// a caller built with -fipa-ra would: rsi, rdx, r11 and xmm2 hold values it
// reads after the call.
// With `misaligned', %rsp is 8 off at the call, as GCC's
// -fipa-stack-alignment leaves it for a callee it knows needs no alignment.
Kept call_keeping(void* fn, bool misaligned = false) {
  Kept k{};
  long pad = misaligned ? 8 : 0;
  asm volatile(
      "mov %%rsp, %%rbx\n\t"
      "sub $128, %%rsp\n\t"  // past this function's red zone
      "and $-16, %%rsp\n\t"
      "sub %[pad], %%rsp\n\t"
      "mov $0x7777, %%r11\n\t"
      "mov $0x4000000000000000, %%rdi\n\t"  // 2.0
      "movq %%rdi, %%xmm2\n\t"
      "mov $1, %%rdi\n\t"
      "mov $2, %%rsi\n\t"
      "mov $3, %%rdx\n\t"
      "mov $4, %%rcx\n\t"
      "mov $5, %%r8\n\t"
      "mov $6, %%r9\n\t"
      "push $8\n\t"
      "push $7\n\t"
      "call *%[fn]\n\t"
      "mov %%rbx, %%rsp\n\t"
      "mov %%rax, %[result]\n\t"
      "mov %%rsi, %[rsi]\n\t"
      "mov %%rdx, %[rdx]\n\t"
      "mov %%r11, %[r11]\n\t"
      "movsd %%xmm2, %[xmm2]\n\t"
      : [result] "=m"(k.result), [rsi] "=m"(k.rsi), [rdx] "=m"(k.rdx), [r11] "=m"(k.r11), [xmm2] "=m"(k.xmm2)
      : [fn] "r"(fn), [pad] "r"(pad)
      : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "xmm0", "xmm1", "xmm2", "xmm3",
        "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
        "memory", "cc");
  return k;
}

TEST(EntryThunk, KeepsRegistersAndFindsStackArguments) {
  LiveThunk t(gpr(kRdx) | gpr(kRsi) | gpr(kR11) | xmm(2), 16,
              reinterpret_cast<const void*>(&graft_test_clobbering_replacement));
  Kept k = call_keeping(t.entry());
  EXPECT_EQ(k.result, 1 + 2 + 3 + 4 + 5 + 6 + 70 + 800);
  EXPECT_EQ(k.rsi, 2);
  EXPECT_EQ(k.rdx, 3);
  EXPECT_EQ(k.r11, 0x7777);
  EXPECT_EQ(k.xmm2, 2.0);
  // The replacement checks its alignment (ud2 if wrong).
  Kept m = call_keeping(t.entry(), true);
  EXPECT_EQ(m.result, k.result);
  EXPECT_EQ(m.rsi, 2);
  EXPECT_EQ(m.xmm2, 2.0);
  // Without the thunk, the caller's values are gone.
  Kept direct = call_keeping(reinterpret_cast<void*>(&graft_test_clobbering_replacement));
  EXPECT_EQ(direct.result, k.result);
  EXPECT_EQ(direct.rsi, -1);
  EXPECT_EQ(direct.r11, -1);
}

long (*volatile call_through)(long, long, long, long, long, long, long, long);

TEST(EntryThunk, ExceptionsUnwindThroughIt) {
  LiveThunk t(gpr(kRdx) | gpr(kRsi) | xmm(2), 16, reinterpret_cast<const void*>(&graft_test_throwing_replacement));
  call_through = reinterpret_cast<long (*)(long, long, long, long, long, long, long, long)>(t.entry());
  EXPECT_EQ(call_through(1, 2, 3, 4, 5, 6, 7, 8), 891);
  std::string what;
  try {
    call_through(-1, 2, 3, 4, 5, 6, 7, 8);
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  EXPECT_EQ(what, "thrown through the thunk");
}

ValueType integer(uint64_t size = 8) { return {ValueType::Kind::Integer, size, "long"}; }
ValueType floating(uint64_t size, const char* name) { return {ValueType::Kind::Float, size, name}; }

arch::CallShape shape(const FunctionSignature& s) {
  auto r = arch::call_shape(s);
  if (auto* why = std::get_if<std::string>(&r)) ADD_FAILURE() << *why;
  return std::get_if<arch::CallShape>(&r) ? std::get<arch::CallShape>(r) : arch::CallShape{};
}

std::string refusal(const FunctionSignature& s) {
  auto r = arch::call_shape(s);
  return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "";
}

TEST(CallShape, StackArgumentsAndReturnRegisters) {
  FunctionSignature s;
  s.returns = integer(4);
  s.parameters.assign(6, integer());
  EXPECT_EQ(shape(s).stack_argument_bytes, 0u);
  EXPECT_EQ(shape(s).return_registers, gpr(0));
  s.parameters.assign(8, integer());
  EXPECT_EQ(shape(s).stack_argument_bytes, 16u);
  // Doubles take xmm0-7 first, whatever the integers do.
  s.parameters.assign(6, integer());
  for (int i = 0; i < 9; ++i) s.parameters.push_back(floating(8, "double"));
  s.returns = floating(8, "double");
  EXPECT_EQ(shape(s).stack_argument_bytes, 8u);
  EXPECT_EQ(shape(s).return_registers, xmm(0));
  // long double: 16 bytes, 16-aligned, always on the stack; returned in st(0).
  s.parameters = {integer(), floating(16, "long double"), integer(16)};
  s.returns = floating(16, "long double");
  EXPECT_EQ(shape(s).stack_argument_bytes, 16u);
  EXPECT_EQ(shape(s).return_registers, 0u);
  s.parameters.assign(5, integer());
  s.parameters.push_back(integer(16));  // __int128 does not split: on the stack
  s.parameters.push_back(integer());    // the sixth register is still free
  s.returns = integer(16);
  EXPECT_EQ(shape(s).stack_argument_bytes, 16u);
  EXPECT_EQ(shape(s).return_registers, gpr(0) | gpr(2));
  s = {};
  EXPECT_EQ(shape(s).return_registers, 0u);  // void
  s.returns = {ValueType::Kind::Aggregate, 32, "big"};
  s.parameters.assign(6, integer());  // the hidden pointer takes rdi
  EXPECT_EQ(shape(s).stack_argument_bytes, 8u);
  EXPECT_EQ(shape(s).return_registers, gpr(0));
  s.returns = {ValueType::Kind::Aggregate, 16, "pair"};
  EXPECT_EQ(shape(s).return_registers, gpr(0) | gpr(2) | xmm(0) | xmm(1));
}

TEST(CallShape, RefusesWhatItCannotClassify) {
  FunctionSignature s;
  s.parameters = {integer()};
  s.variadic = true;
  EXPECT_NE(refusal(s).find("variable number of arguments"), std::string::npos);
  s.variadic = false;
  s.parameters = {integer(), {ValueType::Kind::Aggregate, 24, "point"}};
  EXPECT_NE(refusal(s).find("parameter 2 (a point)"), std::string::npos);
  s.parameters = {floating(16, "__float128")};
  EXPECT_NE(refusal(s).find("__float128"), std::string::npos);
  s.parameters = {};
  s.returns = {ValueType::Kind::Other, 16, "complex double"};
  EXPECT_NE(refusal(s).find("complex double"), std::string::npos);
}

}  // namespace
}  // namespace graft
