// The register contract's decisions on a target GCC really builds at -O2
// (-fipa-ra on): which registers an entry thunk keeps, how many bytes of
// stack arguments it copies, and which cases are still refused, and why.
// Also the signatures read from DWARF that those decisions rest on.
#include <elf.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "builder/compiler.h"
#include "common/error.h"
#include "elf/function_signature.h"
#include "linker/register_contract.h"

namespace graft {
namespace {

const char* kTarget = R"(
#include <stdarg.h>
volatile int k = 5;
volatile long kl = 3;
__attribute__((noinline)) int small(int x) { return x * k + 1; }
__attribute__((noinline)) int caller(int a, int b, int c) {
  int keep = b * c + a;
  int r = small(a);
  return r + keep * k;
}
__attribute__((noinline)) long many(long a, long b, long c, long d, long e, long f, long g, long h) {
  return (a + b + c + d + e + f) * kl + g * 10 + h;
}
__attribute__((noinline)) long mcaller(long x, long y) {
  long keep = x * y + kl;
  long r = many(x, 2, 3, 4, 5, 6, 7, x + 1);
  return r + keep * kl;
}
__attribute__((noinline)) int first(int n, ...) {
  va_list ap;
  va_start(ap, n);
  int x = va_arg(ap, int);
  va_end(ap);
  return x * k + n;
}
__attribute__((noinline)) int vcaller(int a, int b, int c) {
  int keep = b * c + a;
  int r = first(1, a);
  return r + keep * k;
}
__attribute__((noinline)) int leaf(int x) { return x * k; }
__attribute__((noinline)) int lcaller(int a) { return leaf(a) + 1; }
int (*volatile lcaller_ptr)(int) = lcaller;
int main(void) { return caller(1, 2, 3) + (int)mcaller(2, 3) + vcaller(1, 2, 3) + lcaller_ptr(4); }
)";

constexpr arch::RegisterSet gpr(int i) { return arch::RegisterSet(1) << i; }
constexpr int kRdx = 2, kRsi = 6, kRdi = 7, kR11 = 11;

class RegisterContractTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/graft-unit-contract-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/t.c") << kTarget;
    for (const char* g : {"-g", "-g0"})
      ASSERT_EQ(run_command({"cc", "-O2", g, "-Wl,--build-id", dir_ + "/t.c", "-o", dir_ + "/t" + g}), 0);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static uint64_t address(const ElfFile& elf, const std::string& name) {
    for (const auto& s : elf.symbols())
      if (s.name == name && s.type == STT_FUNC) return s.value;
    ADD_FAILURE() << "no " << name;
    return 0;
  }

  // A patch replacing `name' by `call 0; ret': a call may change every
  // call-clobbered register.
  static Patch replacing(const ElfFile& elf, const std::string& name, Bytes code = {0xe8, 0, 0, 0, 0, 0xc3}) {
    Patch p;
    p.layout.code_size = code.size();
    p.image = code;
    FunctionReplacement f;
    f.symbol = name;
    f.address = address(elf, name);
    f.replacement = "new_" + name;
    f.replacement_size = code.size();
    p.functions.push_back(f);
    return p;
  }

  static std::string dir_;
};
std::string RegisterContractTest::dir_;

TEST_F(RegisterContractTest, ThunkKeepsWhatCallersRelyOn) {
  ElfFile elf(dir_ + "/t-g");
  RegisterContract c = check_register_contract(elf, replacing(elf, "small"));
  ASSERT_EQ(c.thunks.size(), 1u);
  // What caller() relies on (main() may add what it might pass on), never
  // small()'s return register.
  const arch::RegisterSet want = gpr(kRdx) | gpr(kRsi) | gpr(kRdi);
  EXPECT_EQ(c.thunks[0].preserved & want, want) << arch::register_names(c.thunks[0].preserved);
  EXPECT_FALSE(c.thunks[0].preserved & gpr(0));
  EXPECT_EQ(c.thunks[0].stack_argument_bytes, 0u);
  EXPECT_NE(c.thunks[0].note.find("`caller'"), std::string::npos) << c.thunks[0].note;
  EXPECT_TRUE(c.warnings.empty());
}

TEST_F(RegisterContractTest, ThunkCopiesStackArguments) {
  ElfFile elf(dir_ + "/t-g");
  RegisterContract c = check_register_contract(elf, replacing(elf, "many"));
  ASSERT_EQ(c.thunks.size(), 1u);
  EXPECT_TRUE(c.thunks[0].preserved & gpr(kR11)) << arch::register_names(c.thunks[0].preserved);
  EXPECT_EQ(c.thunks[0].stack_argument_bytes, 16u);
}

TEST_F(RegisterContractTest, RefusedWhereNoThunkCanBeBuilt) {
  ElfFile elf(dir_ + "/t-g");
  try {
    check_register_contract(elf, replacing(elf, "first"));
    FAIL() << "a variadic function got a thunk";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("`vcaller'"), std::string::npos) << m;
    EXPECT_NE(m.find("variable number of arguments"), std::string::npos) << m;
  }
  ElfFile bare(dir_ + "/t-g0");
  try {
    check_register_contract(bare, replacing(bare, "small"));
    FAIL() << "a target without DWARF got a thunk";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no DWARF describes the parameters of `small'"), std::string::npos)
        << e.what();
  }
}

TEST_F(RegisterContractTest, WithoutThunksRelianceIsAWarning) {
  ElfFile elf(dir_ + "/t-g");
  RegisterContract c = check_register_contract(elf, replacing(elf, "small"), false);
  EXPECT_TRUE(c.thunks.empty());
  ASSERT_FALSE(c.warnings.empty());
  EXPECT_NE(c.warnings[0].find("keeps rdx, rsi, rdi live across the call"), std::string::npos) << c.warnings[0];
}

// lcaller() calls leaf() without aligning the stack (GCC
// -fipa-stack-alignment); no caller relies on a register, so no thunk
// realigns it: a replacement that calls something is warned about.
TEST_F(RegisterContractTest, MisalignedCallerIsAWarning) {
  ElfFile elf(dir_ + "/t-g");
  RegisterContract c = check_register_contract(elf, replacing(elf, "leaf"));
  for (const auto& t : c.thunks) ADD_FAILURE() << t.note;
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("`lcaller' calls `leaf'"), std::string::npos) << c.warnings[0];
  EXPECT_NE(c.warnings[0].find("-fipa-stack-alignment"), std::string::npos) << c.warnings[0];
  // mov $1,%eax; ret: needs no alignment.
  EXPECT_TRUE(check_register_contract(elf, replacing(elf, "leaf", {0xb8, 1, 0, 0, 0, 0xc3})).warnings.empty());
}

TEST_F(RegisterContractTest, SignaturesFromDwarf) {
  ElfFile elf(dir_ + "/t-g");
  auto many = function_signature(elf.path(), address(elf, "many"));
  ASSERT_TRUE(many);
  ASSERT_EQ(many->parameters.size(), 8u);
  EXPECT_EQ(many->parameters[7].kind, ValueType::Kind::Integer);
  EXPECT_EQ(many->parameters[7].size, 8u);
  EXPECT_EQ(many->returns.kind, ValueType::Kind::Integer);
  EXPECT_FALSE(many->variadic);
  auto first = function_signature(elf.path(), address(elf, "first"));
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->variadic);
  EXPECT_FALSE(function_signature(dir_ + "/t-g0", address(elf, "many")));
  // Without .debug_aranges (other compilers), the units' own ranges.
  ASSERT_EQ(run_command({"objcopy", "--remove-section=.debug_aranges", dir_ + "/t-g", dir_ + "/t-noaranges"}), 0);
  auto again = function_signature(dir_ + "/t-noaranges", address(elf, "many"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->parameters.size(), 8u);
}

// C++: a method's parameters come from its declaration in the class
// (DW_AT_specification), `this' first; a function also inlined elsewhere
// has them through DW_AT_abstract_origin.
TEST_F(RegisterContractTest, CxxSignaturesFromDwarf) {
  std::ofstream(dir_ + "/m.cc") << R"(
struct Account { long balance; long add(long amount, double rate); };
__attribute__((noinline)) long Account::add(long amount, double rate) { return balance += amount * rate; }
long twice(long x) { return x * 2; }
long use(long y) { return twice(y) + 1; }
int main() { Account a{1}; return (int)a.add(2, 1.5) + (int)use(3); }
)";
  ASSERT_EQ(run_command({"c++", "-O2", "-g", "-Wl,--build-id", dir_ + "/m.cc", "-o", dir_ + "/m"}), 0);
  ElfFile elf(dir_ + "/m");
  auto add = function_signature(elf.path(), address(elf, "_ZN7Account3addEld"));
  ASSERT_TRUE(add);
  ASSERT_EQ(add->parameters.size(), 3u);
  EXPECT_EQ(add->parameters[0].kind, ValueType::Kind::Integer);  // this
  EXPECT_EQ(add->parameters[2].kind, ValueType::Kind::Float);
  EXPECT_EQ(add->returns.kind, ValueType::Kind::Integer);
  auto twice = function_signature(elf.path(), address(elf, "_Z5twicel"));
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->parameters.size(), 1u);
}

}  // namespace
}  // namespace graft
