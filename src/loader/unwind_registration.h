// The patch's unwind information, registered with the process's unwinder.
//
// A C++ exception thrown through a replacement function is unwound by
// libgcc inside the process. libgcc finds unwind tables of the objects the
// dynamic loader loaded (dl_iterate_phdr), not of a graft region: without
// registration the exception meets a frame it cannot unwind and the
// process terminates. So the patch's .eh_frame is registered with libgcc's
// __register_frame_info (its `struct object' in the patch's bss, no malloc)
// before any thread can run the new code, and deregistered before the
// region is unmapped, whichever way it goes (revert, failed apply,
// recovery after a killed graft): libgcc keeps pointers into the region.
//
// Whether libgcc holds the registration is asked of libgcc itself
// (_Unwind_Find_FDE on a replacement function), since calling
// __deregister_frame_info for an object it does not hold aborts the
// process.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "loader/patch_record.h"
#include "loader/symbol_resolver.h"
#include "loader/target_session.h"

namespace graft {

// Fills record.unwind with libgcc's entry points when the process has an
// unwinder (libgcc_s) and the patch has unwind information; leaves it empty
// otherwise (no unwinder: no exception can be thrown). `eh_frame` and
// `object` are runtime addresses in the region.
void plan_unwind_registration(PatchRecord& record, SymbolResolver& resolver, uint64_t eh_frame, uint64_t object);

// Registers; throws graft::Error naming the process if the call fails.
void register_unwind_info(TargetSession& session, const PatchRecord& record, double timeout_s);

// Before the region of `record` is unmapped: deregisters it if libgcc
// holds it. Throws graft::Error if that cannot be settled: the region must
// then stay mapped.
void deregister_unwind_info(TargetSession& session, const PatchRecord& record, double timeout_s);

}  // namespace graft
