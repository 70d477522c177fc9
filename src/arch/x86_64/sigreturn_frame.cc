#include "arch/x86_64/sigreturn_frame.h"

#include <sys/ucontext.h>

#include <cstddef>
#include <cstring>

namespace graft::arch {

namespace {

// The kernel's restart codes, never seen by user space (linux/errno.h).
constexpr long kRestartSys = -512, kRestartNoIntr = -513, kRestartNoHand = -514;
constexpr long kRestartRestartBlock = -516;
constexpr uint64_t kRestartSyscallNr = 219;  // __NR_restart_syscall
constexpr uint64_t kNoSyscall = static_cast<uint64_t>(-1);

// asm/ucontext.h and asm/sigcontext.h, which do not mix with glibc's headers.
constexpr unsigned long kUcFpXstate = 0x1, kUcSigcontextSs = 0x2, kUcStrictRestoreSs = 0x4;
constexpr uint32_t kFpXstateMagic1 = 0x46505853, kFpXstateMagic2 = 0x46505845;
constexpr size_t kSwReservedOffset = 464;  // in the FXSAVE area
constexpr size_t kMinXstateSize = 512 + 64;  // FXSAVE area + XSAVE header
constexpr size_t kMaxXstateSize = 64 * 1024;

// struct rt_sigframe: the restorer address, the kernel's ucontext (glibc's
// ucontext_t has the same layout up to and including the first 8 bytes of
// uc_sigmask, all the kernel reads), siginfo; then the XSAVE image, 64-byte
// aligned.
constexpr size_t kUcontextOffset = 8;
constexpr size_t kKernelUcontextSize = offsetof(ucontext_t, uc_sigmask) + 8;
constexpr size_t kSiginfoSize = 128;
constexpr size_t kHeaderSize = kUcontextOffset + kKernelUcontextSize + kSiginfoSize;

template <typename T>
T load(const Bytes& b, size_t at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}

template <typename T>
void store(Bytes& b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}

}  // namespace

bool in_user_mode(const Registers& r) { return r.orig_rax == kNoSyscall; }

bool restart_needs_block(const Registers& r) {
  return !in_user_mode(r) && static_cast<long>(r.rax) == kRestartRestartBlock;
}

Registers with_restart_applied(const Registers& r) {
  Registers out = r;
  if (in_user_mode(r)) return out;
  long rc = static_cast<long>(r.rax);
  if (rc == kRestartSys || rc == kRestartNoIntr || rc == kRestartNoHand) {
    out.rax = r.orig_rax;
    out.rip -= sizeof kSyscallInstruction;
  } else if (rc == kRestartRestartBlock) {
    out.rax = kRestartSyscallNr;
    out.rip -= sizeof kSyscallInstruction;
  }
  out.orig_rax = kNoSyscall;
  return out;
}

std::optional<SigreturnFrame> build_sigreturn_frame(const Registers& r, uint64_t sigmask,
                                                    const Bytes& xstate, uint64_t stack_limit,
                                                    uint64_t restorer) {
  // ptrace's XSAVE image keeps XCR0 in the software-reserved bytes, where
  // rt_sigreturn expects the kernel's description of the image (magic,
  // sizes, features) before it trusts the extended state.
  if (xstate.size() < kMinXstateSize || xstate.size() > kMaxXstateSize) return std::nullopt;
  uint64_t xcr0 = load<uint64_t>(xstate, kSwReservedOffset);
  constexpr uint64_t kX87AndSse = 0x3;
  if ((xcr0 & kX87AndSse) != kX87AndSse) return std::nullopt;
  uint32_t xstate_size = static_cast<uint32_t>(xstate.size());
  uint32_t extended_size = xstate_size + sizeof kFpXstateMagic2;

  // The frame starts at 8 mod 16 (a function entry's stack pointer, so a
  // call can return through it); the XSAVE image after it, 64-aligned.
  size_t room = kHeaderSize + 64 + extended_size + 16;
  if (stack_limit < room + 4096) return std::nullopt;
  SigreturnFrame f;
  f.address = ((stack_limit - room) & ~uint64_t(15)) + 8;
  const size_t fpstate_offset = ((f.address + kHeaderSize + 63) & ~uint64_t(63)) - f.address;
  size_t total = fpstate_offset + extended_size;
  f.bytes.assign(total, 0);

  ucontext_t uc;
  std::memset(&uc, 0, sizeof uc);
  uc.uc_flags = kUcFpXstate | kUcSigcontextSs | kUcStrictRestoreSs;
  // An invalid mode makes rt_sigreturn's sigaltstack step fail, and that
  // failure is ignored: the thread's alternate stack stays as it is, which
  // graft cannot read from outside.
  uc.uc_stack.ss_flags = 0x4;
  greg_t* g = uc.uc_mcontext.gregs;
  g[REG_R8] = r.r8, g[REG_R9] = r.r9, g[REG_R10] = r.r10, g[REG_R11] = r.r11;
  g[REG_R12] = r.r12, g[REG_R13] = r.r13, g[REG_R14] = r.r14, g[REG_R15] = r.r15;
  g[REG_RDI] = r.rdi, g[REG_RSI] = r.rsi, g[REG_RBP] = r.rbp, g[REG_RBX] = r.rbx;
  g[REG_RDX] = r.rdx, g[REG_RAX] = r.rax, g[REG_RCX] = r.rcx, g[REG_RSP] = r.rsp;
  g[REG_RIP] = r.rip, g[REG_EFL] = r.eflags;
  g[REG_CSGSFS] = static_cast<greg_t>((r.cs & 0xffff) | (r.gs & 0xffff) << 16 |
                                      (r.fs & 0xffff) << 32 | (r.ss & 0xffff) << 48);
  uc.uc_mcontext.fpregs = reinterpret_cast<fpregset_t>(f.address + fpstate_offset);
  std::memcpy(&uc.uc_sigmask, &sigmask, sizeof sigmask);

  store<uint64_t>(f.bytes, 0, restorer);
  std::memcpy(f.bytes.data() + kUcontextOffset, &uc, kKernelUcontextSize);
  std::memcpy(f.bytes.data() + fpstate_offset, xstate.data(), xstate_size);
  size_t sw = fpstate_offset + kSwReservedOffset;
  std::memset(f.bytes.data() + sw, 0, 48);
  store<uint32_t>(f.bytes, sw, kFpXstateMagic1);
  store<uint32_t>(f.bytes, sw + 4, extended_size);
  store<uint64_t>(f.bytes, sw + 8, xcr0);
  store<uint32_t>(f.bytes, sw + 16, xstate_size);
  store<uint32_t>(f.bytes, fpstate_offset + xstate_size, kFpXstateMagic2);
  return f;
}

}  // namespace graft::arch
