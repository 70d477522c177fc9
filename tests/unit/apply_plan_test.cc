// The apply's per-function plan against a fake process: where the jump
// goes, what the entry holds, stacking on an applied patch, and the checks
// that refuse a function (too short, modified, entry overwritten).
#include <gtest/gtest.h>

#include "arch/x86_64/jump.h"
#include "common/error.h"
#include "loader/apply_plan.h"
#include "fake_memory.h"

namespace graft {
namespace {

constexpr uint64_t kBias = 0x555500000000;
// push %rbp; mov %rsp,%rbp; mov $1,%eax; pop %rbp; ret; nop...
const Bytes kCompute = {0x55, 0x48, 0x89, 0xe5, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x5d, 0xc3, 0x90};

FunctionReplacement replacement(const Bytes& code, uint64_t address = 0x1000) {
  FunctionReplacement f;
  f.symbol = "compute";
  f.address = address;
  f.size = code.size();
  f.sha256 = sha256_hex(code);
  return f;
}

TEST(ApplyPlan, PlansTheJumpAtTheEntry) {
  FakeMemory memory;
  memory.put(kBias + 0x1000, kCompute);
  PlannedFunction p = plan_function(replacement(kCompute), kBias, memory, {}, 42, "/bin/demo");
  EXPECT_EQ(p.name, "compute");
  EXPECT_EQ(p.address, kBias + 0x1000);
  EXPECT_EQ(p.site, kBias + 0x1000);
  EXPECT_EQ(p.entry, Bytes(kCompute.begin(), kCompute.begin() + arch::kRedirectSize));
  EXPECT_EQ(p.original, p.entry);
  EXPECT_EQ(p.current, kCompute);
  EXPECT_EQ(p.original_code, kCompute);
  EXPECT_EQ(p.stacked_on, nullptr);
}

TEST(ApplyPlan, TheJumpGoesAfterEndbr64) {
  Bytes code = {0xf3, 0x0f, 0x1e, 0xfa};
  code.insert(code.end(), kCompute.begin(), kCompute.end());
  FakeMemory memory;
  memory.put(kBias + 0x1000, code);
  PlannedFunction p = plan_function(replacement(code), kBias, memory, {}, 42, "/bin/demo");
  EXPECT_EQ(p.site, kBias + 0x1004);
  EXPECT_EQ(p.current, kCompute);
}

TEST(ApplyPlan, RefusesAFunctionTooShortForTheJump) {
  Bytes tiny = {0x31, 0xc0, 0xc3};  // xor %eax,%eax; ret
  FakeMemory memory;
  memory.put(kBias + 0x1000, tiny);
  try {
    plan_function(replacement(tiny), kBias, memory, {}, 42, "/bin/demo");
    FAIL() << "planned a 3-byte function";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("process 42: function `compute' is 3 bytes, too short"), std::string::npos)
        << e.what();
  }
}

TEST(ApplyPlan, RefusesAFunctionThatDiffersFromTheBuild) {
  Bytes modified = kCompute;
  modified[5] = 0x02;  // mov $2,%eax
  FakeMemory memory;
  memory.put(kBias + 0x1000, modified);
  try {
    plan_function(replacement(kCompute), kBias, memory, {}, 42, "/bin/demo");
    FAIL() << "planned a modified function";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("differs from the one the patch was built for (another build of /bin/demo"),
              std::string::npos)
        << e.what();
  }
}

// An applied patch whose jump is at the entry: the plan checks the running
// bytes with the original entry back, and keeps that original.
PatchRecord applied_patch(const Bytes& original, const Bytes& jump) {
  PatchRecord r;
  r.id = "0123456789ab";
  r.name = "first";
  r.state = RecordState::Active;
  FunctionRecord f;
  f.symbol = "compute";
  f.address = kBias + 0x1000;
  f.site = kBias + 0x1000;
  f.original = original;
  f.redirect = jump;
  r.functions.push_back(f);
  return r;
}

TEST(ApplyPlan, StacksOnTheJumpOfAnAppliedPatch) {
  Bytes jump = *arch::redirect_bytes(kBias + 0x1000, kBias + 0x200000);
  Bytes running = kCompute;
  std::copy(jump.begin(), jump.end(), running.begin());
  FakeMemory memory;
  memory.put(kBias + 0x1000, running);
  std::vector<PatchRecord> records = {applied_patch(Bytes(kCompute.begin(), kCompute.begin() + 5), jump)};
  PlannedFunction p = plan_function(replacement(kCompute), kBias, memory, records, 42, "/bin/demo");
  EXPECT_EQ(p.stacked_on, &records[0]);
  EXPECT_EQ(p.entry, jump);
  EXPECT_EQ(p.original, Bytes(kCompute.begin(), kCompute.begin() + 5));
  EXPECT_EQ(p.current, running);
  EXPECT_EQ(p.original_code, kCompute);
  EXPECT_EQ(p.whole, kCompute);
}

TEST(ApplyPlan, RefusesAnEntryThatNoLongerHoldsThePatchBelow) {
  Bytes jump = *arch::redirect_bytes(kBias + 0x1000, kBias + 0x200000);
  FakeMemory memory;
  memory.put(kBias + 0x1000, kCompute);  // someone wrote the original back
  std::vector<PatchRecord> records = {applied_patch(Bytes(kCompute.begin(), kCompute.begin() + 5), jump)};
  try {
    plan_function(replacement(kCompute), kBias, memory, records, 42, "/bin/demo");
    FAIL() << "planned over a missing jump";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no longer holds the redirection of patch first (0123456789ab)"),
              std::string::npos)
        << e.what();
  }
}

TEST(ApplyPlan, AFunctionPutBackRunsItsOriginal) {
  Bytes jump = *arch::redirect_bytes(kBias + 0x1000, kBias + 0x200000);
  Bytes running = kCompute;
  std::copy(jump.begin(), jump.end(), running.begin());
  FakeMemory memory;
  memory.put(kBias + 0x1000, running);
  PatchRecord r = applied_patch(Bytes(kCompute.begin(), kCompute.begin() + 5), jump);
  r.functions[0].size = kCompute.size();
  PlannedFunction p = plan_restored_function(r.functions[0], r.functions[0].original, memory);
  EXPECT_EQ(p.current, running);
  EXPECT_EQ(p.original_code, kCompute);
  EXPECT_EQ(p.entry, jump);
}

}  // namespace
}  // namespace graft
