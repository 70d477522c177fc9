// x86-64 registers as a bit set, and the System V ABI's register classes.
// Kept apart from the decoder (instruction.h) so that readers of patch files
// can check a register set without linking Zydis.
//
// Bits 0-15 are the general-purpose registers in encoding order (rax, rcx,
// rdx, rbx, rsp, rbp, rsi, rdi, r8-r15), bits 16-31 the vector registers
// xmm/ymm/zmm 0-15.
#pragma once
#include <cstdint>
#include <string>

namespace graft::arch {

using RegisterSet = uint32_t;

// SysV ABI: registers a call may change (rax rcx rdx rsi rdi r8-r11, all vector).
RegisterSet caller_saved_registers();
// Registers a call may read as arguments (rdi rsi rdx rcx r8 r9, rax for
// varargs, xmm0-7) and a return may hand back (rax rdx xmm0 xmm1).
RegisterSet argument_registers();
RegisterSet return_registers();
std::string register_names(RegisterSet set);

}  // namespace graft::arch
