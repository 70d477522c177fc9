// Runs an IFUNC resolver inside the target, for a reference of a patch that
// no GOT of the process settles (see symbol_resolver.h).
//
// The resolver runs like a callback (callbacks.h): on one thread of the
// process, returning through the patch region's thunk over a signal frame,
// so that if graft dies meanwhile the thread returns to where it was. It is
// called with AT_HWCAP (from /proc/PID/auxv) as its argument, as glibc does
// where resolvers take one. The address it returns must be code of a file
// mapped in the process (the defining object's, normally); anything else is
// refused with the process, the symbol and the object named.
//
// Only at apply time, after the patch's record is written (state loading:
// recovery knows the region), and only for symbols the patch refers to.
#pragma once
#include <string>

#include "loader/patch_record.h"
#include "loader/symbol_resolver.h"
#include "loader/target_session.h"

namespace graft {

struct IfuncResult {
  uint64_t address = 0;
  std::string note;  // "`strlen' (an IFUNC of ...): 0x..., from its resolver run in the process"
};

IfuncResult run_ifunc_resolver(TargetSession& session, const PatchRecord& patch, const IfuncCall& ifunc,
                               double timeout_s);

}  // namespace graft
