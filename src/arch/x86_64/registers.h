// x86-64 thread registers as ptrace sees them, and the register conventions
// graft relies on: the program counter, the stack pointer, the red zone and
// the system-call ABI.
#pragma once
#include <sys/user.h>

#include <cstdint>

namespace graft::arch {

using Registers = user_regs_struct;

inline uint64_t pc(const Registers& r) { return r.rip; }
inline uint64_t sp(const Registers& r) { return r.rsp; }
inline void set_pc(Registers& r, uint64_t pc) { r.rip = pc; }

// Bytes below the stack pointer a leaf function may use without moving it.
constexpr uint64_t kRedZone = 128;

// The bytes of the system-call instruction (`syscall`, 0f 05), and the
// registers for executing it with `nr` and up to six arguments.
constexpr uint8_t kSyscallInstruction[2] = {0x0f, 0x05};
void prepare_syscall(Registers& r, uint64_t instruction, long nr, const uint64_t (&args)[6]);
long syscall_result(const Registers& r);
// Whether a thread stopped by ptrace was waiting in a system call: the kernel
// keeps the call's number in orig_rax (-1 otherwise) and the pc follows the
// `syscall` instruction, whose bytes are `before_pc`.
bool in_system_call(const Registers& r, const uint8_t (&before_pc)[2]);

// The breakpoint written first when a site is rewritten in running code (as
// the kernel's text_poke_bp does): a thread that executes it traps to graft,
// which sends it to the gate.
constexpr uint8_t kBreakpoint = 0xcc;
// The site a thread stopped by that breakpoint executed.
inline uint64_t breakpoint_site(uint64_t pc_after_trap) { return pc_after_trap - 1; }

// A function call set up on a stopped thread (System V ABI): up to six
// integer arguments in registers, `stack_top` rounded down to 16 bytes, the
// return address pushed below it as a `call` would. Returns where the
// return address must be written (the caller writes it to the target).
struct CallFrame {
  uint64_t return_address_slot;
};
CallFrame prepare_call(Registers& r, uint64_t function, uint64_t stack_top,
                       const uint64_t (&args)[6]);
// The integer return value of a finished call (rax).
uint64_t call_result(const Registers& r);

// The arguments of an IFUNC resolver. glibc's x86-64 dynamic linker calls
// resolvers with none (elf_ifunc_invoke): they read the CPU features ld.so
// recorded. graft passes AT_HWCAP first, as glibc's generic path does:
// harmless to a resolver that takes no argument.
inline void ifunc_resolver_arguments(uint64_t hwcap, uint64_t (&args)[6]) {
  for (auto& a : args) a = 0;
  args[0] = hwcap;
}

// Register value by libunwind's x86-64 register number; false if unknown.
bool unwind_register(const Registers& r, int regnum, uint64_t* value);

}  // namespace graft::arch
