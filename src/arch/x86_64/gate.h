// The dispatch entry ("gate") of a replaced function during a per-thread
// transition, and the breakpoint used to install jumps in running code.
//
// The entry jump of the function leads to its gate. The gate looks the
// calling thread up in the transition table (runtime/transition_abi.h) and
// continues in the new function or in the old path (the displaced
// instructions, relocated, then a jump back into the old function):
//
//   push %rax; push %rcx; push %rdx        the only registers it uses
//   mov %fs:0, %rax                        thread pointer (TCB self pointer)
//   slot = ((u32)(tp >> 6) * 0x9e3779b1 >> 16) & (capacity-1), times 16
//   lea table(%rip), %rdx
//   probe: tp == key?  -> found;  key == 0? -> absent;  next slot
//   found:  cmpb $1, 8(%rdx,%rcx)         universe byte == new ?
//   absent: cmpb $1, goal(%rip)           header goal == new ?
//   pop %rdx; pop %rcx; pop %rax           (pop leaves the flags alone)
//   je new_function
//   jmp old_path
//
// At a function entry every argument register (rdi rsi rdx rcx r8 r9, rax
// for varargs, r10 for a static chain, xmm*) is live and is preserved; the
// stack below %rsp is free (the callee's frame does not exist yet) and the
// three pushes are popped before leaving, so %rsp and the alignment the
// callee expects (rsp+8 a multiple of 16) are unchanged. Only the arithmetic
// flags change, which the ABI does not preserve across a call (DF stays 0).
#pragma once
#include <cstdint>
#include <optional>

#include "arch/x86_64/registers.h"
#include "common/hash.h"

namespace graft::arch {

struct GateAddresses {
  uint64_t gate = 0;          // where the gate code goes
  uint64_t table = 0;         // first entry of the transition table
  uint32_t capacity = 0;      // entries, a power of two
  uint64_t goal_byte = 0;     // the header's `goal'
  uint64_t new_code = 0;      // the replacement function
  uint64_t old_path = 0;      // the relocated displaced instructions
};

// Machine code of one gate; throws graft::Error if a target is out of reach.
Bytes gate_code(const GateAddresses& a);
constexpr size_t kMaxGateSize = 128;

// A thread stopped inside a gate has not started the function yet: the gate
// only saved three registers below the stack pointer and read the table.
// Its registers as they were at the function's entry: the registers the
// gate has saved and not yet restored taken back from `saved` (the three
// words at the thread's stack pointer), the stack pointer raised past them,
// the pc at `entry`. nullopt if `offset` is outside `code` or `code` is not
// laid out as gate_code() lays it out. The arithmetic flags are not
// restored (free at a function entry, see above).
std::optional<Registers> registers_before_gate(const Registers& r, const Bytes& code, uint64_t offset,
                                               const uint64_t (&saved)[3], uint64_t entry);

// The switch gate of the stop model (one per replaced function of a patch
// that replaces several): one byte in the patch region, the activation
// flag, sends every call to the new or to the old code, so that the
// functions switch together with a one-byte write and never one by one:
//
//   cmpb $1, flag(%rip); je new_function; jmp old_path
//
// Entries lead to the switch gates only while graft switches them (and
// after a graft killed in the middle); the arithmetic flags it changes are
// free at a function entry.
Bytes switch_gate_code(uint64_t at, uint64_t flag, uint64_t new_code, uint64_t old_path);
constexpr size_t kSwitchGateSize = 32;

// The thread pointer a thread's registers hold (fs base on x86-64).
uint64_t thread_pointer(const Registers& r);

}  // namespace graft::arch
