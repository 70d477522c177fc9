#include <gtest/gtest.h>

#include "builder/unified_diff.h"
#include "differ/correlation.h"
#include "differ/dwarf_facts.h"

namespace graft {
namespace {

TEST(Correlation, StableNames) {
  EXPECT_EQ(stable_name("parse.isra.0"), "parse.isra.#");
  EXPECT_EQ(stable_name("parse.constprop.12"), "parse.constprop.#");
  EXPECT_EQ(stable_name("parse.part.0.isra.3"), "parse.part.#.isra.#");
  EXPECT_EQ(stable_name("counter.1"), "counter.#");
  EXPECT_EQ(stable_name("CSWTCH.10"), "CSWTCH.#");
  EXPECT_EQ(stable_name(".LC3"), ".LC3");  // a label, not a numbered symbol
  EXPECT_EQ(stable_name("_ZN3foo3barEv"), "_ZN3foo3barEv");
  EXPECT_EQ(stable_name("f.cold"), "f.cold");
  EXPECT_TRUE(has_compiler_number("f.isra.0"));
  EXPECT_FALSE(has_compiler_number("f.localalias"));
  EXPECT_TRUE(is_cold_piece("f.cold"));
  EXPECT_TRUE(is_cold_piece("f.part.0.cold"));
  EXPECT_FALSE(is_cold_piece("coldest"));
  EXPECT_EQ(cold_piece_parent("f.part.0.cold"), "f.part.0");
}

std::vector<CorrelationSymbol> fns(std::initializer_list<const char*> names) {
  std::vector<CorrelationSymbol> out;
  for (const char* n : names) out.push_back({n, true, ""});
  return out;
}

TEST(Correlation, RenumberedClonesPair) {
  auto orig = fns({"main", "parse.isra.0", "emit.constprop.0", "emit.constprop.1"});
  auto patched = fns({"emit.constprop.1", "parse.isra.3", "main", "emit.constprop.0", "fresh"});
  auto m = correlate(orig, patched);
  EXPECT_EQ(m.at(2), 0u);  // main
  EXPECT_EQ(m.at(1), 1u);  // parse.isra.3 <- parse.isra.0: unique stable name
  EXPECT_EQ(m.at(0), 3u);  // two constprop clones on both sides: by exact name
  EXPECT_EQ(m.at(3), 2u);
  EXPECT_FALSE(m.count(4));  // a new function
}

TEST(Correlation, CloneKindsDoNotMix) {
  // f became an .isra clone: another calling convention, never the same function.
  auto m = correlate(fns({"f"}), fns({"f.isra.0"}));
  EXPECT_TRUE(m.empty());
}

TEST(Correlation, StaticLocalsByOwner) {
  std::vector<CorrelationSymbol> orig = {{"count.0", false, "a"}, {"count.1", false, "b"}};
  // A new static local `count' in a new function shifted the numbers.
  std::vector<CorrelationSymbol> patched = {{"count.0", false, "new_fn"},
                                            {"count.1", false, "a"},
                                            {"count.2", false, "b"}};
  auto m = correlate(orig, patched);
  EXPECT_FALSE(m.count(0));
  EXPECT_EQ(m.at(1), 0u);
  EXPECT_EQ(m.at(2), 1u);
}

TEST(Correlation, AmbiguousGroupsStayUnpaired) {
  std::vector<CorrelationSymbol> orig = {{"n.0", false, "f"}, {"n.1", false, "f"}};
  std::vector<CorrelationSymbol> patched = {{"n.4", false, "f"}, {"n.5", false, "f"},
                                            {"n.6", false, "f"}};
  EXPECT_TRUE(correlate(orig, patched).empty());
}

TEST(UnifiedDiff, ChangedLinesOfTheNewVersion) {
  const char* text =
      "diff -ruN a/src/x.c b/src/x.c\n"
      "--- a/src/x.c\t2024-01-01\n"
      "+++ b/src/x.c\t2024-01-01\n"
      "@@ -10,6 +10,7 @@ int f(void)\n"
      " ctx\n"
      " ctx\n"
      "-old\n"
      "+new1\n"
      "+new2\n"
      " ctx\n"
      " ctx\n"
      "@@ -40,3 +41,2 @@\n"
      " ctx\n"
      "-gone\n"
      " ctx\n"
      "--- a/y.h\n"
      "+++ b/y.h\n"
      "@@ -1 +1 @@\n"
      "-a\n"
      "+b\n";
  auto files = parse_unified_diff(text, 1);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].path, "src/x.c");
  EXPECT_EQ(files[0].changed_lines, (std::vector<int>{12, 13, 42}));
  EXPECT_EQ(files[1].path, "y.h");
  EXPECT_EQ(files[1].changed_lines, (std::vector<int>{1}));
  EXPECT_EQ(parse_unified_diff(text, 0)[0].path, "b/src/x.c");
}

TEST(UnifiedDiff, NewLineOfOldLine) {
  const char* text =
      "--- a/x.c\n"
      "+++ b/x.c\n"
      "@@ -10,3 +10,5 @@\n"
      " ten\n"
      "+new1\n"
      "+new2\n"
      " eleven\n"
      "-twelve\n"
      "+twelve!\n"
      "@@ -40,2 +41,0 @@\n"
      "-forty\n"
      "-fortyone\n"
      "@@ -50,0 +51,1 @@\n"
      "+after fifty\n";
  auto files = parse_unified_diff(text, 1);
  ASSERT_EQ(files.size(), 1u);
  const DiffFile& f = files[0];
  EXPECT_EQ(f.new_line_of(9), 9);          // before every hunk
  EXPECT_EQ(f.new_line_of(10), 10);        // context
  EXPECT_EQ(f.new_line_of(11), 13);        // context after two added lines
  EXPECT_EQ(f.new_line_of(12), std::nullopt);  // changed
  EXPECT_EQ(f.new_line_of(20), 22);        // between hunks
  EXPECT_EQ(f.new_line_of(40), std::nullopt);  // removed
  EXPECT_EQ(f.new_line_of(42), 42);        // after two removed lines
  EXPECT_EQ(f.new_line_of(50), 50);        // the line an insertion follows
  EXPECT_EQ(f.new_line_of(51), 52);
}

TEST(Layout, Differences) {
  TypeLayout a{"struct", "item", 8, {{"id", {0, 4}}, {"count", {4, 4}}}};
  TypeLayout b{"struct", "item", 16, {{"id", {0, 4}}, {"price", {8, 8}}, {"count", {4, 4}}}};
  EXPECT_EQ(layout_difference(a, a), "");
  EXPECT_EQ(layout_difference(a, b), "size 8 -> 16 bytes, member `price' added at +8");
  TypeLayout c{"struct", "item", 8, {{"count", {0, 4}}, {"id", {4, 4}}}};
  EXPECT_EQ(layout_difference(a, c), "member `count' moved from +4 to +0, member `id' moved from +0 to +4");
}

}  // namespace
}  // namespace graft
