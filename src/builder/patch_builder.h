// Turns a compiled patch object (ET_REL) into a Patch: lays its sections out
// in an image, reads the GRAFT_REPLACE records, resolves every undefined
// symbol against the target object, and fingerprints each replaced function.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "builder/relocatable_object.h"
#include "elf/elf_file.h"
#include "patch/patch.h"

namespace graft {

Patch link_patch_object(const RelocatableObject& object, const ElfFile& target,
                        const std::string& target_path, const std::string& name);

// An object linked with no target (the runtime graft injects, graft-rt.o):
// every undefined symbol comes from the process's libraries; `exports` are
// its global default-visibility functions by image offset.
struct LinkedRuntime {
  Patch image;  // no functions; name "graft-rt"
  std::map<std::string, uint64_t> exports;
};
LinkedRuntime link_runtime_object(const ElfFile& object);

struct SourceBuild {
  std::string source;       // FILE.c or FILE.cc
  std::string target_path;  // executable or shared library
  std::string name;         // patch name
  std::vector<std::string> compiler_flags;
};

// Compiles and links; the caller writes the result with serialize_patch().
Patch build_patch_from_source(const SourceBuild& build);

}  // namespace graft
