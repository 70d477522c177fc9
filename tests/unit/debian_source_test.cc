#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "builder/debian_source.h"
#include "common/file.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

bool has_line_for(const std::string& text, const std::string& package) {
  return text.rfind(package + "=", 0) == 0 || text.find("\n" + package + "=") != std::string::npos;
}

TEST(DebianSource, BuildDependencyVersionsReadTheSourceStanza) {
  char dir[] = "/tmp/graft-unit-control-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  fs::create_directories(fs::path(dir) / "debian");
  write_text_file(std::string(dir) + "/debian/control",
                  "\n"
                  "Source: x\n"
                  "# a comment\n"
                  "Build-Depends: debhelper-compat (= 13),\n"
                  " dpkg (>= 1.0) | no-such-package-graft,\n"
                  " ${misc:Depends}, tar:native [amd64] <!nocheck>\n"
                  "Build-Depends-Indep: bash\n"
                  "\n"
                  "Package: x\n"
                  "Build-Depends: coreutils\n");
  std::string versions = build_dependency_versions(dir);
  fs::remove_all(dir);
  EXPECT_TRUE(has_line_for(versions, "dpkg")) << versions;
  EXPECT_TRUE(has_line_for(versions, "tar")) << versions;
  EXPECT_TRUE(has_line_for(versions, "binutils")) << versions;  // the toolchain's
  EXPECT_FALSE(has_line_for(versions, "bash")) << versions;       // Indep: not built here
  EXPECT_FALSE(has_line_for(versions, "coreutils")) << versions;  // not the Source stanza
  EXPECT_EQ(versions.find("no-such-package-graft"), std::string::npos);
}

}  // namespace
}  // namespace graft
