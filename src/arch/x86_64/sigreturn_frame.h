// A signal frame that, consumed by rt_sigreturn, puts a thread back exactly
// as graft found it: general registers, flags, signal mask and the whole
// extended FPU state (XSAVE image as ptrace reports it).
//
// graft places one on a thread's stack before it borrows the thread for a
// system call, and points the call's return at glibc's `__restore_rt`. If
// graft dies while the thread is borrowed (SIGKILL detaches it with the
// borrowed registers), the thread finishes the call, returns into
// rt_sigreturn and resumes where it was, instead of running garbage.
#pragma once
#include <cstdint>
#include <optional>

#include "arch/x86_64/registers.h"
#include "common/hash.h"  // Bytes

namespace graft::arch {

// `syscall; ret`, and glibc's signal restorer `mov $15,%rax; syscall`.
constexpr uint8_t kSyscallReturnGadget[3] = {0x0f, 0x05, 0xc3};
constexpr uint8_t kRestoreRtGadget[9] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
// Where a function graft calls in the target returns: `mov %rax,%rdi;
// mov $15,%rax; syscall; ud2`. The result travels in rdi to the
// rt_sigreturn stop, where graft reads it; without graft, rt_sigreturn just
// puts the thread back. graft writes it into the patch region's code.
constexpr uint8_t kCallReturnThunk[14] = {0x48, 0x89, 0xc7, 0x48, 0xc7, 0xc0, 0x0f,
                                          0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b};
constexpr uint64_t kCallReturnThunkSyscallEnd = 12;  // pc at its rt_sigreturn stop
constexpr long kRtSigreturnNr = 15;

// A thread stopped inside an interrupted system call resumes by restarting
// it (ERESTART* codes). These are the registers after that restart has been
// applied, as the kernel does when no handler runs, with no system call in
// progress: safe to restore by rt_sigreturn or by ptrace alike.
Registers with_restart_applied(const Registers& r);
// True for a call restarted through restart_syscall (sleeps, timed waits):
// rt_sigreturn cancels that restart, so if graft died while borrowing such
// a thread, its call would return EINTR.
bool restart_needs_block(const Registers& r);

// True if the registers show a thread stopped outside any system call.
bool in_user_mode(const Registers& r);

struct SigreturnFrame {
  Bytes bytes;             // written at `address`
  uint64_t address = 0;    // the stack pointer for the borrowed thread; it
                           // holds the restorer, and is 8 mod 16 (as at a
                           // function's entry)
};

// Builds the frame to sit below `stack_limit` (already past the red zone).
// `xstate` is the NT_X86_XSTATE regset as ptrace returns it (XCR0 in its
// software-reserved bytes). Empty if the image is not one it understands.
std::optional<SigreturnFrame> build_sigreturn_frame(const Registers& r, uint64_t sigmask,
                                                    const Bytes& xstate, uint64_t stack_limit,
                                                    uint64_t restorer);

}  // namespace graft::arch
