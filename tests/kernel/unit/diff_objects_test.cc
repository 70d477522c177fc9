// Which objects graft build --kernel --from-diff compiles for a diff, and
// what it refuses before compiling anything.
#include <gtest/gtest.h>

#include "differ/unified_diff.h"
#include "kernel/diff_objects.h"
#include "kernel/klp_convert.h"

namespace graft::kernel {
namespace {

std::string file_diff(const std::string& path) {
  return "--- a/" + path + "\n+++ b/" + path + "\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n d\n";
}

TEST(KernelDiffObjects, CompilesChangedCFilesAlone) {
  auto files = parse_unified_diff(file_diff("kernel/time/time.c") + file_diff("ipc/util.c"), 1);
  auto r = objects_for_diff(files);
  ASSERT_EQ(r.objects.size(), 2u);
  EXPECT_EQ(r.objects[0].source, "kernel/time/time.c");
  EXPECT_EQ(r.objects[0].object, "kernel/time/time.o");
  EXPECT_EQ(r.objects[1].object, "ipc/util.o");
  EXPECT_TRUE(r.refusals.empty());
  EXPECT_TRUE(r.ignored.empty());
}

TEST(KernelDiffObjects, LeavesAsideWhatNeverReachesTheKernel) {
  auto files = parse_unified_diff(file_diff("Documentation/admin-guide/x.rst") + file_diff("tools/perf/a.c") +
                                      file_diff("debian/changelog") + file_diff("MAINTAINERS") +
                                      file_diff("fs/proc/cmdline.c"),
                                  1);
  auto r = objects_for_diff(files);
  ASSERT_EQ(r.objects.size(), 1u);
  EXPECT_EQ(r.objects[0].object, "fs/proc/cmdline.o");
  EXPECT_EQ(r.ignored.size(), 4u);
  EXPECT_TRUE(r.refusals.empty());
}

TEST(KernelDiffObjects, RefusesAssemblyAndBuildFilesWithTheReasonKeepsHeaders) {
  auto files = parse_unified_diff(file_diff("include/linux/sched.h") + file_diff("arch/x86/entry/entry_64.S") +
                                      file_diff("kernel/Makefile") + file_diff("mm/Kconfig") +
                                      file_diff("lib/crc32table.txt") + file_diff("kernel/exit.c"),
                                  1);
  auto r = objects_for_diff(files);
  ASSERT_EQ(r.objects.size(), 1u);
  EXPECT_EQ(r.headers, std::vector<std::string>{"include/linux/sched.h"});
  ASSERT_EQ(r.refusals.size(), 4u);
  EXPECT_NE(r.refusals[0].find("entry_64.S: assembly"), std::string::npos) << r.refusals[0];
  EXPECT_NE(r.refusals[1].find("kernel/Makefile: changes the build"), std::string::npos) << r.refusals[1];
  EXPECT_NE(r.refusals[2].find("mm/Kconfig: changes the build"), std::string::npos) << r.refusals[2];
  EXPECT_NE(r.refusals[3].find("not a C source file"), std::string::npos) << r.refusals[3];
}

TEST(KernelDiffObjects, LivepatchSymbolNamesCarryThePosition) {
  EXPECT_EQ(livepatch_symbol_name("saved_command_line", 0), ".klp.sym.vmlinux.saved_command_line,0");
  EXPECT_EQ(livepatch_symbol_name("show_val", 2), ".klp.sym.vmlinux.show_val,2");
}

}  // namespace
}  // namespace graft::kernel
