// The exit stub of a thread whose return graft has rewritten (per-thread
// models): a thread held in a replaced function moves to its goal universe
// the moment its outermost replaced frame returns, with no polling.
//
// graft points that frame's return-address slot at a stub of its own (one
// per rewritten thread, in the gate pages) while the thread is stopped:
//
//   +0   int3                         graft (the tracer) is told at once,
//                                     flips the thread's universe and sends
//                                     it on to +1
//   +1   movb $universe, byte(%rip)   the thread's entry in the table: what
//                                     graft's SIGTRAP handler (listing +0 ->
//                                     +1) does without graft
//   +8   jmp *+32(%rip)               the real return address
//   +32  original return address
//   +40  the slot that was rewritten
//   +48  "GRAFTRET"                   the stub is in use
//   +56  thread id
//
// At a return only rax, rdx (and vector registers) carry values; the stub
// touches no register but rip and the arithmetic flags, which no caller
// expects preserved across a call. The data lets recovery put every
// original back after the graft that wrote them died.
#pragma once
#include <cstdint>
#include <optional>

#include "common/hash.h"

namespace graft::arch {

constexpr size_t kReturnStubSize = 64;
constexpr size_t kReturnStubOriginal = 32;  // where the stub keeps the real return address

struct ReturnStub {
  uint64_t original = 0;  // the real return address
  uint64_t slot = 0;      // where it was on the thread's stack
  uint32_t tid = 0;
};

// The stub at `at` that sets the byte at `universe_byte` to `universe`
// and returns to `s.original`; throws graft::Error if the byte is out of
// RIP-relative reach.
Bytes return_stub_code(uint64_t at, uint64_t universe_byte, uint8_t universe, const ReturnStub& s);
// The stub's data if `code` (kReturnStubSize bytes read at `at`) is a stub
// in use as return_stub_code() lays it out; nullopt otherwise.
std::optional<ReturnStub> parse_return_stub(const Bytes& code, uint64_t at);
// An unused stub: all int3.
Bytes unused_return_stub();

}  // namespace graft::arch
