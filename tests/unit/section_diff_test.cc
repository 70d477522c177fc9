#include <gtest/gtest.h>

#include "elf/section_diff.h"

namespace graft {
namespace {

TEST(SectionDiff, NamesTheSectionsThatDiffer) {
  EXPECT_EQ(section_differences("/bin/true", "/bin/true"), "");
  // Two builds of coreutils' sources that differ in their code and strings.
  std::string d = section_differences("/bin/true", "/bin/false");
  EXPECT_NE(d.find(".rodata"), std::string::npos) << d;
  EXPECT_NE(d.find("differ"), std::string::npos) << d;
  EXPECT_EQ(section_differences("/bin/true", "/bin/false", 1).find(", "), std::string::npos);
}

}  // namespace
}  // namespace graft
