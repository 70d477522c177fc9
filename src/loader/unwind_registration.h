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
// The region's return stubs (the per-thread models' exit stubs, the stop
// model's return trap: arch/x86_64/stub_unwind_info.h) are registered the
// same way, once per region, before any stub can serve: their `struct
// object' and .eh_frame in rw pages of the region (after the transition
// area, or after the record pages), record.stub_unwind.
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
// unwinder (libgcc_s, or libgcc_eh inside a static executable: the
// session's objects tell) and the patch has unwind information; leaves it
// empty otherwise (no unwinder: no exception can be thrown). `eh_frame` and
// `object` are runtime addresses in the region.
void plan_unwind_registration(PatchRecord& record, SymbolResolver& resolver, TargetSession& session,
                              uint64_t eh_frame, uint64_t object);

// Fills record.stub_unwind likewise, for the stubs' .eh_frame.
void plan_stub_unwind_registration(PatchRecord& record, SymbolResolver& resolver, TargetSession& session,
                                   uint64_t eh_frame, uint64_t object);

// Registers; throws graft::Error naming the process if the call fails.
void register_unwind_info(TargetSession& session, const PatchRecord& record, double timeout_s);

// Registers the stubs' unwind information. Returns why it is not
// registered ("" if it is): the stubs may then not serve where libgcc
// unwinds (consistency/return_traps.h).
std::string register_stub_unwind_info(TargetSession& session, const PatchRecord& record, double timeout_s);

// Whether libgcc has taken the stubs' registration of `record` (its
// `struct object' is no longer blank).
bool stub_unwind_registered(const ProcessMemory& memory, const PatchRecord& record);

// Before the region of `record` is unmapped: deregisters the patch's and
// the stubs' unwind information where libgcc holds it. Throws graft::Error if that cannot be settled: the region must
// then stay mapped.
void deregister_unwind_info(TargetSession& session, const PatchRecord& record, double timeout_s);

}  // namespace graft
