// Writes a RelocatableObject out as an x86-64 ET_REL file (libelf), for a
// toolchain to link: graft build --kernel --from-diff hands the changed
// functions the differ assembled to Kbuild this way.
//
// Symbol tables of relocatable objects list local symbols first (sh_info
// of .symtab is the first global), so symbols are renumbered and every
// relocation follows; the null section and null symbol stay at index 0.
// Relocation, symbol and string table sections of the input are dropped and
// written anew.
#pragma once
#include <string>

#include "linker/relocatable_object.h"

namespace graft {

void write_relocatable(const RelocatableObject& object, const std::string& path);

}  // namespace graft
