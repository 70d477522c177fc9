#include <gtest/gtest.h>

#include "builder/build_path.h"

namespace graft {
namespace {

TEST(BuildPath, DebianUnpacksToSourceDashUpstream) {
  EXPECT_EQ(debian_build_path("nginx", "1.22.1-9+deb12u9"), "/build/reproducible-path/nginx-1.22.1");
  EXPECT_EQ(debian_build_path("expat", "2.5.0-1+deb12u1"), "/build/reproducible-path/expat-2.5.0");
  // The epoch is not part of the folder; a native version has no revision;
  // an upstream version may hold dashes of its own.
  EXPECT_EQ(debian_build_path("openssh", "1:9.2p1-2+deb12u3"), "/build/reproducible-path/openssh-9.2p1");
  EXPECT_EQ(debian_build_path("dpkg", "1.21.22"), "/build/reproducible-path/dpkg-1.21.22");
  EXPECT_EQ(debian_build_path("x", "1.0-rc1-3"), "/build/reproducible-path/x-1.0-rc1");
}

TEST(BuildPath, RecordsBecomePathsOfTheTree) {
  const std::string bp = "/build/reproducible-path/nginx-1.22.1", tree = "/var/cache/graft/w/tree";
  CompileRecord r;
  r.cwd = bp;
  r.object = bp + "/objs/src/core/nginx.o";
  r.compared = "/var/cache/graft/w/side-original/3-nginx.o";
  r.source = bp + "/src/core/nginx.c";
  r.argv = {"cc", "-I" + bp + "/src/core", "-ffile-prefix-map=" + bp + "=.", "-c", "src/core/nginx.c",
            bp + "-other/x.c"};
  relocate_record(r, bp, tree);
  EXPECT_EQ(r.cwd, tree);
  EXPECT_EQ(r.object, tree + "/objs/src/core/nginx.o");
  EXPECT_EQ(r.compared, "/var/cache/graft/w/side-original/3-nginx.o");
  EXPECT_EQ(r.source, tree + "/src/core/nginx.c");
  EXPECT_EQ(r.argv[1], "-I" + tree + "/src/core");
  EXPECT_EQ(r.argv[2], "-ffile-prefix-map=" + tree + "=.");
  EXPECT_EQ(r.argv[4], "src/core/nginx.c");
  EXPECT_EQ(r.argv[5], bp + "-other/x.c");  // another folder that only starts alike
}

}  // namespace
}  // namespace graft
