// Puts the entry thunks the register contract asks for (register_contract.h)
// into a patch object, as if the compiler had emitted them: a code section
// per thunk whose call is relocated to the replacement, and its CIE and FDE
// appended to the object's .eh_frame, so that the linker lays them out,
// relocates them and indexes their unwind information like any other code.
#pragma once
#include <vector>

#include "linker/register_contract.h"
#include "linker/relocatable_object.h"
#include "patch/patch.h"

namespace graft {

// `linked` is `object` linked once: it names each function's replacement.
void add_entry_thunks(RelocatableObject& object, const Patch& linked, const std::vector<ThunkRequest>& thunks);

}  // namespace graft
