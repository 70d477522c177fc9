// Turns a compiled patch object (ET_REL) into a Patch: lays its sections out
// in an image, reads the GRAFT_REPLACE records, resolves every undefined
// symbol against the target object, and fingerprints each replaced function.
// Shared by `graft build` (builder/), the differ's assembled objects and the
// runtime graft injects (loader/runtime_binding).
#pragma once
#include <map>
#include <string>

#include "elf/elf_file.h"
#include "linker/relocatable_object.h"
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

}  // namespace graft
