// `graft build --from-source': compiles the patch source and links it
// (linker/object_linker.h) against the target.
#pragma once
#include <string>
#include <vector>

#include "patch/patch.h"

namespace graft {

struct SourceBuild {
  std::string source;       // FILE.c or FILE.cc
  std::string target_path;  // executable or shared library
  std::string name;         // patch name
  std::vector<std::string> compiler_flags;
};

// Compiles and links; the caller writes the result with serialize_patch().
Patch build_patch_from_source(const SourceBuild& build);

}  // namespace graft
