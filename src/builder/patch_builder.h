// Turns a compiled patch object (ET_REL) into a Patch: lays its sections out
// in an image, reads the GRAFT_REPLACE records, resolves every undefined
// symbol against the target object, and fingerprints each replaced function.
#pragma once
#include <string>
#include <vector>

#include "builder/relocatable_object.h"
#include "elf/elf_file.h"
#include "patch/patch.h"

namespace graft {

Patch link_patch_object(const RelocatableObject& object, const ElfFile& target,
                        const std::string& target_path, const std::string& name);

struct SourceBuild {
  std::string source;       // FILE.c or FILE.cc
  std::string target_path;  // executable or shared library
  std::string name;         // patch name
  std::vector<std::string> compiler_flags;
};

// Compiles and links; the caller writes the result with serialize_patch().
Patch build_patch_from_source(const SourceBuild& build);

}  // namespace graft
