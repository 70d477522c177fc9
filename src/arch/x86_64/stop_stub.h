// The stop model's return trap: with every other thread stopped, a thread
// caught with code being replaced on its stack runs alone until the
// outermost frame in that code returns. graft points that frame's return
// address at this stub and runs the thread under PTRACE_SYSCALL; the stub's
// system call stops the thread at the return, wherever the function goes
// on in between.
//
// Unlike the per-thread models' exit stub, it needs neither an int3 nor a
// SIGTRAP handler in the target: if graft dies while the thread runs, the
// stub just makes a harmless system call and returns where the frame would
// have, every register as the function left it.
//
//   +0   lea -128(%rsp),%rsp          below the red zone (nothing lives
//                                     there at a return; kept for code
//                                     that returns without a call)
//   +5   push %rax                    the return value, and the two
//   +6   push %rcx                    registers `syscall' clobbers (a
//   +7   push %r11                    caller built with -fipa-ra may keep
//                                     values in them across the call)
//   +9   mov $39,%eax                 getpid
//   +14  syscall                      graft's stop (pc +16 at its entry)
//   +16  pop %r11
//   +18  pop %rcx
//   +19  pop %rax
//   +20  lea 128(%rsp),%rsp
//   +28  jmp *+40(%rip-relative)      the real return address
//   +40  original return address
//   +48  the slot that was rewritten
//   +56  thread id
//
// The data lets a later graft put the return address back (or move a
// thread found inside the stub out of it) after the graft that wrote it
// died.
#pragma once
#include <cstdint>
#include <optional>

#include "arch/x86_64/registers.h"
#include "arch/x86_64/return_stub.h"
#include "common/hash.h"

namespace graft::arch {

constexpr size_t kStopStubSize = 64;
constexpr size_t kStopStubOriginal = 40;  // where the stub keeps the real return address
constexpr uint64_t kStopStubSyscallEnd = 16;  // pc at its system call's entry stop

// The stub at `at`, returning to `s.original`.
Bytes stop_stub_code(uint64_t at, const ReturnStub& s);
// The stub's data if `code` (kStopStubSize bytes read at `at`) is a stub in
// use; nullopt otherwise (unused, or not a stub).
std::optional<ReturnStub> parse_stop_stub(const Bytes& code);
// A stub not in use: its code, with no return address.
Bytes unused_stop_stub(uint64_t at);
// A stub no longer in use whose thread got its return address back: as
// unused_stop_stub(), but keeping `original`, where an unwinder that read
// the stub's address from that thread's stack before (stub_unwind_info.h)
// still finds the real return address until the stub serves again.
Bytes retired_stop_stub(uint64_t at, uint64_t original);

// Whether `pc` lies in the stub's code.
inline bool in_stop_stub(uint64_t pc, uint64_t at) { return pc >= at && pc - at < 40; }
// The registers of a thread stopped at `r.rip` inside the stub at `at`, as
// they would be once it had returned to `original` (the stub undone or run
// to its end); `top` holds the three words at r.rsp. Outside any system
// call (orig_rax -1): set at a syscall stop, the kernel skips the call.
Registers leave_stop_stub(const Registers& r, uint64_t original, uint64_t at, const uint64_t (&top)[3]);

}  // namespace graft::arch
