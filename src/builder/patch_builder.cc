#include "builder/patch_builder.h"

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "builder/compiler.h"
#include "common/error.h"
#include "elf/elf_file.h"
#include "linker/object_linker.h"

namespace graft {

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "graft-build-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) fail("cannot create a temporary directory: {}", errno_text(errno));
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

Patch build_patch_from_source(const SourceBuild& build) {
  ElfFile target(build.target_path);
  TempDir tmp;
  std::string object = tmp.path + "/patch.o";
  compile_patch_source(build.source, object, build.compiler_flags);
  ElfFile obj(object, build.source);
  std::string abs = std::filesystem::absolute(build.target_path).lexically_normal().string();
  return link_patch_object(read_relocatable(obj), target, abs, build.name);
}

}  // namespace graft
