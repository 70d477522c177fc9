// graft's built-in runtime (graft-rt.o embedded in graft): it must link with
// no target, export exactly the graft_* API, and need nothing from the
// process but libc. A runtime change that graft could not inject (TLS, a
// constructor, an unsupported relocation) fails here, not in a target.
#include <gtest/gtest.h>

#include <set>

#include "loader/runtime_binding.h"

namespace graft {
namespace {

TEST(BuiltinRuntime, LinksAndExportsTheApi) {
  const LinkedRuntime& rt = builtin_runtime();
  for (const char* f : {"graft_shadow_get", "graft_shadow_alloc", "graft_shadow_get_or_alloc",
                        "graft_shadow_free", "graft_shadow_free_all", "graft_rt_abi_version"}) {
    ASSERT_TRUE(rt.exports.count(f)) << f;
    EXPECT_LT(rt.exports.at(f), rt.image.layout.code_size) << f;
    EXPECT_TRUE(is_runtime_function(f));
  }
  for (const auto& [name, offset] : rt.exports)
    EXPECT_EQ(name.rfind("graft_", 0), 0u) << "exports an internal symbol: " << name;
  EXPECT_FALSE(is_runtime_function("rt_lock_acquire"));
  EXPECT_FALSE(is_runtime_function("malloc"));
  EXPECT_TRUE(rt.image.functions.empty());
  EXPECT_FALSE(rt.image.sha256.empty());
}

TEST(BuiltinRuntime, NeedsOnlyLibraryFunctions) {
  for (const auto& e : builtin_runtime().image.externals) {
    EXPECT_EQ(e.where, ExternalSymbol::Where::Library) << e.name;
    EXPECT_NE(e.name.rfind("graft_", 0), 0u) << "refers to itself: " << e.name;
  }
  // The shadow table is static data: it must be in the image (bss).
  EXPECT_GT(builtin_runtime().image.layout.bss_size, 16384u * 8);
}

}  // namespace
}  // namespace graft
