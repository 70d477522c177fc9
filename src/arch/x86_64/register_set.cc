#include "arch/x86_64/register_set.h"

namespace graft::arch {

namespace {

constexpr RegisterSet gpr(int i) { return RegisterSet(1) << i; }
constexpr RegisterSet vec(int i) { return RegisterSet(1) << (16 + i); }
constexpr int kRax = 0, kRcx = 1, kRdx = 2, kRsi = 6, kRdi = 7, kR8 = 8, kR9 = 9, kR10 = 10, kR11 = 11;

}  // namespace

RegisterSet caller_saved_registers() {
  RegisterSet s = gpr(kRax) | gpr(kRcx) | gpr(kRdx) | gpr(kRsi) | gpr(kRdi) | gpr(kR8) | gpr(kR9) |
                  gpr(kR10) | gpr(kR11);
  for (int i = 0; i < 16; ++i) s |= vec(i);
  return s;
}

RegisterSet argument_registers() {
  RegisterSet s = gpr(kRdi) | gpr(kRsi) | gpr(kRdx) | gpr(kRcx) | gpr(kR8) | gpr(kR9) | gpr(kRax);
  for (int i = 0; i < 8; ++i) s |= vec(i);
  return s;
}

RegisterSet return_registers() { return gpr(kRax) | gpr(kRdx) | vec(0) | vec(1); }

std::string register_names(RegisterSet set) {
  static const char* names[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                  "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  std::string out;
  for (int i = 0; i < 32; ++i) {
    if (!(set & (RegisterSet(1) << i))) continue;
    if (!out.empty()) out += ", ";
    out += i < 16 ? std::string(names[i]) : "xmm" + std::to_string(i - 16);
  }
  return out;
}

}  // namespace graft::arch
