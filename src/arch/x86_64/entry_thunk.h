// The entry thunk: what a patch's redirect jumps to, instead of the
// replacement, when callers of the original rely on call-clobbered
// registers the original never writes (GCC's -fipa-ra, see
// linker/register_contract.h). It makes the replacement keep them:
//
//   push %rbp; mov %rsp,%rbp          a frame the CFI below describes
//   sub  $frame,%rsp                  the save area
//   and  $-16,%rsp                    16-byte aligned at the call, even when
//   (sub $8,%rsp)                     the caller did not align its call
//                                     (GCC -fipa-stack-alignment, on at -O2,
//                                     when it knows the original needs no
//                                     alignment); 8 more for an odd number
//                                     of stack words
//   mov  %reg,-8*i(%rbp)              each preserved general register
//   movups %xmmN,-off(%rbp)           each preserved vector register (128 bits)
//   pushq 16+8*j(%rbp)                the stack-passed arguments, last first:
//                                     the replacement finds them above its
//                                     return address as the caller laid them
//   call replacement                  rel32, relocated like any patch call
//   mov  -8*i(%rbp),%reg; movups ...  the saved values back
//   leave; ret
//
// Everything lives in the thread's own stack frame: no shared save area, so
// threads and recursion need nothing more, and a thread stopped anywhere in
// the thunk is an ordinary frame to unwind (graft's stack check, C++
// exceptions) through the FDE the thunk carries. It runs at function entry,
// after the caller's `call': the caller's red zone is dead then (any callee
// may use the stack below the return address), so pushing is allowed.
// The thunk writes no register but %rbp and %rsp (both restored) and the
// flags (never kept across a call). Saving 128 bits of a vector register is
// enough for callers that keep only xmm values; the builder refuses callers
// that use wider registers. Restoring a return register would hide the
// replacement's result: the builder never asks for one.
#pragma once
#include <cstdint>

#include "arch/x86_64/register_set.h"
#include "common/hash.h"

namespace graft::arch {

// More stack-passed argument bytes than this: the builder refuses.
constexpr uint64_t kMaxThunkStackArgumentBytes = 1024;

struct EntryThunk {
  Bytes code;
  // Offset in `code` of the call's rel32, to relocate (PC32, addend -4) to
  // the replacement.
  uint64_t call_field = 0;
  // A CIE and an FDE (.eh_frame layout, pc-relative sdata4 addresses)
  // describing `code`; the FDE's pc_begin at `cfi_pc_begin` is to be
  // relocated (PC32, addend 0) to the thunk's first byte. 8-byte aligned
  // size.
  Bytes cfi;
  uint64_t cfi_pc_begin = 0;
};

// Throws graft::Error if `preserved` holds a register that is not
// call-clobbered or the stack area is larger than the limit or not a
// multiple of 8.
EntryThunk entry_thunk(RegisterSet preserved, uint64_t stack_argument_bytes);

}  // namespace graft::arch
