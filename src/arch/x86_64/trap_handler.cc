#include "arch/x86_64/trap_handler.h"

#include <signal.h>
#include <sys/syscall.h>

#include <cstring>

#include "arch/x86_64/assembler.h"

namespace graft::arch {

namespace {

// Offsets in ucontext_t (x86-64): uc_flags 8, uc_link 8, uc_stack 24, then
// mcontext's gregs; REG_RIP is gregs[16].
constexpr int64_t kUcontextRip = 40 + 16 * 8;
constexpr uint64_t kSaRestorer = 0x04000000;  // SA_RESTORER (not in glibc's headers)

void assemble(Assembler& a, uint64_t at, uint32_t sites) {
  using A = Assembler;
  const auto rax = A::reg(ZYDIS_REGISTER_RAX), rcx = A::reg(ZYDIS_REGISTER_RCX),
             r8 = A::reg(ZYDIS_REGISTER_R8), r8d = A::reg(ZYDIS_REGISTER_R8D),
             r9 = A::reg(ZYDIS_REGISTER_R9);
  const auto uc_rip = A::mem(ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_NONE, kUcontextRip, 8);
  // rdi = signal, rsi = siginfo, rdx = ucontext.
  a.emit(ZYDIS_MNEMONIC_MOV, {rax, uc_rip});
  a.emit(ZYDIS_MNEMONIC_LEA, {r9, A::mem(ZYDIS_REGISTER_RAX, ZYDIS_REGISTER_NONE, -1, 8)});  // the int3
  a.emit(ZYDIS_MNEMONIC_LEA, {rcx, A::rip(at + kTrapTableOffset, 8)});
  a.emit(ZYDIS_MNEMONIC_MOV, {r8d, A::imm(sites)});
  a.label("probe");
  a.emit(ZYDIS_MNEMONIC_TEST, {r8d, r8d});
  a.branch(ZYDIS_MNEMONIC_JZ, a.at("foreign"));
  a.emit(ZYDIS_MNEMONIC_CMP, {A::mem(ZYDIS_REGISTER_RCX, ZYDIS_REGISTER_NONE, 0, 8), r9});
  a.branch(ZYDIS_MNEMONIC_JZ, a.at("ours"));
  // graft sent the thread on and died before the signal was discarded.
  a.emit(ZYDIS_MNEMONIC_CMP, {A::mem(ZYDIS_REGISTER_RCX, ZYDIS_REGISTER_NONE, 8, 8), rax});
  a.branch(ZYDIS_MNEMONIC_JZ, a.at("done"));
  a.emit(ZYDIS_MNEMONIC_ADD, {rcx, A::imm(16)});
  a.emit(ZYDIS_MNEMONIC_SUB, {r8d, A::imm(1)});
  a.branch(ZYDIS_MNEMONIC_JMP, a.at("probe"));
  a.label("ours");
  a.emit(ZYDIS_MNEMONIC_MOV, {rax, A::mem(ZYDIS_REGISTER_RCX, ZYDIS_REGISTER_NONE, 8, 8)});
  a.emit(ZYDIS_MNEMONIC_MOV, {uc_rip, rax});
  a.label("done");
  a.emit(ZYDIS_MNEMONIC_RET, {});
  // Not one of graft's: what the target would have done.
  a.label("foreign");
  a.emit(ZYDIS_MNEMONIC_MOV, {rax, A::rip(at + kTrapSavedOffset, 8)});
  a.emit(ZYDIS_MNEMONIC_CMP, {rax, A::imm(1)});  // SIG_DFL 0, SIG_IGN 1
  a.branch(ZYDIS_MNEMONIC_JNBE, a.at("chain"));
  // rt_sigaction(SIGTRAP, &SIG_DFL, NULL, 8); tgkill(getpid(), gettid(), SIGTRAP):
  // blocked inside this handler, it is delivered (and kills) on return.
  a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_EAX), A::imm(SYS_rt_sigaction)});
  a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_EDI), A::imm(SIGTRAP)});
  a.emit(ZYDIS_MNEMONIC_LEA, {A::reg(ZYDIS_REGISTER_RSI), A::rip(at + kTrapDefaultOffset, 8)});
  a.emit(ZYDIS_MNEMONIC_XOR, {A::reg(ZYDIS_REGISTER_EDX), A::reg(ZYDIS_REGISTER_EDX)});
  a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_R10D), A::imm(8)});
  a.emit(ZYDIS_MNEMONIC_SYSCALL, {});
  a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_EAX), A::imm(SYS_getpid)});
  a.emit(ZYDIS_MNEMONIC_SYSCALL, {});
  a.emit(ZYDIS_MNEMONIC_MOV, {r8, rax});
  a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_EAX), A::imm(SYS_gettid)});
  a.emit(ZYDIS_MNEMONIC_SYSCALL, {});
  a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_RSI), rax});
  a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_RDI), r8});
  a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_EDX), A::imm(SIGTRAP)});
  a.emit(ZYDIS_MNEMONIC_MOV, {A::reg(ZYDIS_REGISTER_EAX), A::imm(SYS_tgkill)});
  a.emit(ZYDIS_MNEMONIC_SYSCALL, {});
  a.emit(ZYDIS_MNEMONIC_RET, {});
  a.label("chain");
  a.emit(ZYDIS_MNEMONIC_JMP, {rax});
}

void put64(Bytes& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, sizeof v); }

}  // namespace

Bytes trap_handler_block(uint64_t at, const std::vector<TrapSite>& sites) {
  if (at % 16 != 0) fail("trap handler at {:#x} is not 16-byte aligned", at);
  Bytes out(trap_handler_size(sites.size()), 0);
  Bytes code = assemble_two_pass(at, [&](Assembler& a) { assemble(a, at, static_cast<uint32_t>(sites.size())); });
  Bytes restorer = assemble_two_pass(at + kTrapRestorerOffset, [](Assembler& a) {
    a.emit(ZYDIS_MNEMONIC_MOV, {Assembler::reg(ZYDIS_REGISTER_EAX), Assembler::imm(SYS_rt_sigreturn)});
    a.emit(ZYDIS_MNEMONIC_SYSCALL, {});
  });
  if (code.size() > kTrapRestorerOffset || restorer.size() > kTrapSavedOffset - kTrapRestorerOffset)
    fail("trap handler code is {} bytes, more than {}", code.size(), kTrapRestorerOffset);
  std::copy(code.begin(), code.end(), out.begin());
  std::fill(out.begin() + code.size(), out.begin() + kTrapRestorerOffset, 0xcc);
  std::copy(restorer.begin(), restorer.end(), out.begin() + kTrapRestorerOffset);
  for (size_t i = 0; i < sites.size(); ++i) {
    if (sites[i].site == 0 || sites[i].to == 0) fail("trap handler: a site or destination is 0");
    put64(out, kTrapTableOffset + 16 * i, sites[i].site);
    put64(out, kTrapTableOffset + 16 * i + 8, sites[i].to);
  }
  return out;
}

Bytes trap_handler_action(uint64_t at) {
  Bytes a(kKernelSigactionSize, 0);
  put64(a, 0, at);
  put64(a, 8, SA_SIGINFO | kSaRestorer);
  put64(a, 16, at + kTrapRestorerOffset);
  return a;  // mask 0: only SIGTRAP itself is blocked while it runs
}

uint64_t sigaction_handler(const Bytes& action) {
  uint64_t v = 0;
  if (action.size() >= sizeof v) std::memcpy(&v, action.data(), sizeof v);
  return v;
}

}  // namespace graft::arch
