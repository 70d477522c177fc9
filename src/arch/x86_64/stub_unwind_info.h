// Unwind information for graft's return stubs, so that libgcc's unwinder
// (C++ exceptions, pthread_cancel's forced unwind, backtrace()) passes a
// frame whose return address graft pointed at a stub, as if the return
// address were still the real one.
//
// The frame below the stub (the replaced function) returns to the stub:
// libgcc looks its caller up at ra-1 = stub-1 (at pc itself for a frame a
// signal interrupted), so each stub's FDE covers [stub-1, end of its code
// and data). Its rows say what returning to the real caller would:
//
//   CFA    = %rsp + 1 (+ what the stop stub has pushed): one byte above
//            the caller's %rsp once the stub has returned, which is given
//            as a value (DW_CFA_val_expression rsp: CFA - 1)
//   ra     = the word at stub+kReturnStubOriginal (kStopStubOriginal):
//            DW_CFA_expression with the slot's constant address, so the
//            FDE stays right whatever return address the stub holds
//   others = unchanged (the stop stub's saved rax, rcx, r11 are described
//            while they are on the stack)
//
// Why not CFA = the caller's %rsp: the stub's frame has no size, so its CFA
// would equal that of the frame below it, and libgcc tells frames apart by
// their CFA (uw_identify_context): in the second phase of a throw it would
// take the stub for the handler's frame found in the first and abort. A CFA
// one byte off is no real frame's (those are 8-aligned).
//
// An unwinder that uses these rules never runs the stub: the thread is
// moved by graft's other checks (see consistency/return_traps.h).
#pragma once
#include <cstdint>

#include "common/hash.h"

namespace graft::arch {

// The return stubs of a patch region: `exit_count` exit stubs
// (return_stub.h) laid out from `exit_stubs`, and the stop model's return
// trap (stop_stub.h) at `stop_stub` (0: none).
struct ReturnStubs {
  uint64_t exit_stubs = 0;
  uint32_t exit_count = 0;
  uint64_t stop_stub = 0;
};

// Their .eh_frame (a CIE, an FDE per stub, the zero terminator), to be
// placed at `at`. Throws graft::Error if a stub is out of its reach.
Bytes return_stubs_eh_frame(uint64_t at, const ReturnStubs& stubs);
// Its size for `exit_count` exit stubs and, if `stop_stub`, the stop stub.
uint64_t return_stubs_eh_frame_size(uint32_t exit_count, bool stop_stub);

}  // namespace graft::arch
