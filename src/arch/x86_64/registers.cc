#include "arch/x86_64/registers.h"

#include <libunwind-x86_64.h>

namespace graft::arch {

void prepare_syscall(Registers& r, uint64_t instruction, long nr, const uint64_t (&args)[6]) {
  r.rax = static_cast<uint64_t>(nr);
  r.rdi = args[0];
  r.rsi = args[1];
  r.rdx = args[2];
  r.r10 = args[3];
  r.r8 = args[4];
  r.r9 = args[5];
  r.rip = instruction;
  // Not inside a system call: the kernel must not apply syscall-restart
  // logic to these registers when the thread resumes.
  r.orig_rax = static_cast<uint64_t>(-1);
}

long syscall_result(const Registers& r) { return static_cast<long>(r.rax); }

bool in_system_call(const Registers& r, const uint8_t (&before_pc)[2]) {
  return static_cast<long>(r.orig_rax) >= 0 && before_pc[0] == kSyscallInstruction[0] &&
         before_pc[1] == kSyscallInstruction[1];
}

CallFrame prepare_call(Registers& r, uint64_t function, uint64_t stack_top,
                       const uint64_t (&args)[6]) {
  // At the callee's first instruction rsp + 8 must be 16-aligned: the
  // return address sits at a 16-aligned address minus 8.
  uint64_t slot = (stack_top & ~uint64_t(15)) - 8;
  r.rsp = slot;
  r.rip = function;
  r.rdi = args[0];
  r.rsi = args[1];
  r.rdx = args[2];
  r.rcx = args[3];
  r.r8 = args[4];
  r.r9 = args[5];
  r.rax = 0;                           // no vector arguments (varargs ABI)
  r.eflags &= ~uint64_t(0x400);        // DF clear, as the ABI requires at calls
  r.orig_rax = static_cast<uint64_t>(-1);  // not in a system call: no restart
  return {slot};
}

uint64_t call_result(const Registers& r) { return r.rax; }

bool unwind_register(const Registers& r, int regnum, uint64_t* value) {
  switch (regnum) {
    case UNW_X86_64_RAX: *value = r.rax; return true;
    case UNW_X86_64_RDX: *value = r.rdx; return true;
    case UNW_X86_64_RCX: *value = r.rcx; return true;
    case UNW_X86_64_RBX: *value = r.rbx; return true;
    case UNW_X86_64_RSI: *value = r.rsi; return true;
    case UNW_X86_64_RDI: *value = r.rdi; return true;
    case UNW_X86_64_RBP: *value = r.rbp; return true;
    case UNW_X86_64_RSP: *value = r.rsp; return true;
    case UNW_X86_64_R8: *value = r.r8; return true;
    case UNW_X86_64_R9: *value = r.r9; return true;
    case UNW_X86_64_R10: *value = r.r10; return true;
    case UNW_X86_64_R11: *value = r.r11; return true;
    case UNW_X86_64_R12: *value = r.r12; return true;
    case UNW_X86_64_R13: *value = r.r13; return true;
    case UNW_X86_64_R14: *value = r.r14; return true;
    case UNW_X86_64_R15: *value = r.r15; return true;
    case UNW_X86_64_RIP: *value = r.rip; return true;
    default: return false;
  }
}

}  // namespace graft::arch
