// UnitDiff on objects GCC really produces: renumbered labels and static
// locals must not look like changes; real changes must.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "builder/compiler.h"
#include "differ/unit_diff.h"

namespace graft {
namespace {

class UnitDiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/graft-unit-diff-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<ObjectView> compile(const std::string& name, const std::string& code) {
    std::string src = dir_ + "/" + name + ".c", obj = dir_ + "/" + name + ".o";
    std::ofstream(src) << code;
    int rc = run_command({"cc", "-c", "-O2", "-ffunction-sections", "-fdata-sections", src, "-o", obj});
    EXPECT_EQ(rc, 0);
    ElfFile elf(obj);
    return std::make_unique<ObjectView>(read_relocatable(elf), name + ".c");
  }

  static std::set<std::string> changed(const UnitDiff& d) {
    std::set<std::string> out;
    for (size_t p : d.changed_functions()) out.insert(d.patched().pieces()[p].name);
    return out;
  }

  std::string dir_;
};

const char* kOriginal = R"(
int f(void) { static int n; return ++n; }
const char *greet(void) { return "hello"; }
const char *bye(void) { return "bye"; }
static const int table[4] = {1, 2, 3, 4};
int lookup(int i) { return table[i & 3]; }
int other(int i) { return i * 7; }
)";

TEST_F(UnitDiffTest, RenumberingIsNotAChange) {
  auto a = compile("a", kOriginal);
  // A new function with its own static local and string, first in the unit:
  // every `n.N' and `.LCN' of the unit is renumbered.
  auto b = compile("b", std::string("int g(void) { static int n; return n += 2; }\n"
                                    "const char *first(void) { return \"first\"; }\n") + kOriginal);
  UnitDiff d(a.get(), *b);
  EXPECT_TRUE(changed(d).empty());
  EXPECT_TRUE(d.refusals().empty());
  auto g = b->find("g", true);
  ASSERT_TRUE(g);
  EXPECT_FALSE(d.original_of(*g));  // new
}

TEST_F(UnitDiffTest, RealChanges) {
  auto a = compile("a", kOriginal);
  std::string code = kOriginal;
  code.replace(code.find("\"hello\""), 7, "\"hello!\"");
  code.replace(code.find("{1, 2, 3, 4}"), 12, "{1, 2, 3, 5}");
  auto b = compile("b", code);
  UnitDiff d(a.get(), *b);
  EXPECT_EQ(changed(d), (std::set<std::string>{"greet", "lookup"}));
  EXPECT_TRUE(d.refusals().empty());  // a local constant is copied, not rewritten
}

TEST_F(UnitDiffTest, ChangedVariableIsRefused) {
  auto a = compile("a", "int limit = 10;\nint get(void) { return limit; }\n");
  auto b = compile("b", "int limit = 12;\nint get(void) { return limit; }\n");
  UnitDiff d(a.get(), *b);
  EXPECT_TRUE(changed(d).empty());
  ASSERT_EQ(d.refusals().size(), 1u);
  EXPECT_NE(d.refusals()[0].find("`limit'"), std::string::npos) << d.refusals()[0];
  EXPECT_NE(d.refusals()[0].find("initial value differs at +0x0"), std::string::npos) << d.refusals()[0];
}

TEST_F(UnitDiffTest, RemovedStaticLocalIsRefused) {
  auto a = compile("a", "int f(void) { static int calls; return ++calls; }\n");
  auto b = compile("b", "int f(void) { return 1; }\n");
  UnitDiff d(a.get(), *b);
  EXPECT_EQ(changed(d), (std::set<std::string>{"f"}));
  ASSERT_EQ(d.refusals().size(), 1u);
  EXPECT_NE(d.refusals()[0].find("static local `calls."), std::string::npos) << d.refusals()[0];
}

}  // namespace
}  // namespace graft
