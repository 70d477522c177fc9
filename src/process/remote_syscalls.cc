#include "process/remote_syscalls.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace graft {

namespace {

constexpr size_t kScratchSize = 512;

RemoteAddress find_syscall_instruction(pid_t pid, const ProcessMemory& memory,
                                       const std::vector<Mapping>& maps) {
  std::vector<const Mapping*> order;
  for (const auto& m : maps)
    if (m.exec && m.path == "[vdso]") order.push_back(&m);
  for (const auto& m : maps)
    if (m.exec && m.read && m.path != "[vdso]" && m.path != "[vsyscall]") order.push_back(&m);
  const auto* insn = arch::kSyscallInstruction;
  for (const Mapping* m : order) {
    constexpr uint64_t kChunk = 64 * 1024;
    for (uint64_t at = m->start; at < m->end; at += kChunk) {
      uint64_t n = std::min(kChunk, m->end - at);
      Bytes b(n);
      if (!memory.try_read({at}, b.data(), n)) break;
      auto it = std::search(b.begin(), b.end(), insn, insn + sizeof arch::kSyscallInstruction);
      if (it != b.end()) return {at + static_cast<uint64_t>(it - b.begin())};
    }
  }
  fail("process {}: found no system-call instruction in its code", pid);
}

}  // namespace

RemoteSyscalls::RemoteSyscalls(Tracer& tracer, const ProcessMemory& memory,
                               const std::vector<Mapping>& maps)
    : tracer_(tracer), memory_(memory) {
  syscall_insn_ = find_syscall_instruction(tracer.pid(), memory, maps);
  tid_ = tracer.stopped_thread();
}

RemoteSyscalls::~RemoteSyscalls() {
  if (!saved_scratch_.empty()) {
    try {
      memory_.write(scratch_, saved_scratch_);
    } catch (...) {
    }
  }
}

long RemoteSyscalls::call(long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                          uint64_t a4, uint64_t a5) {
  arch::Registers saved = tracer_.registers(tid_);
  arch::Registers regs = saved;
  arch::prepare_syscall(regs, syscall_insn_.value, nr, {a0, a1, a2, a3, a4, a5});
  tracer_.set_registers(tid_, regs);
  tracer_.single_step(tid_);
  long result = arch::syscall_result(tracer_.registers(tid_));
  tracer_.set_registers(tid_, saved);
  return result;
}

RemoteAddress RemoteSyscalls::scratch_string(const std::string& s) {
  if (s.size() + 1 > kScratchSize) fail("remote string too long");
  if (saved_scratch_.empty()) {
    uint64_t sp = arch::sp(tracer_.registers(tid_));
    scratch_ = {(sp - arch::kRedZone - kScratchSize) & ~uint64_t(15)};
    saved_scratch_ = memory_.read(scratch_, kScratchSize);
  }
  Bytes b(s.begin(), s.end());
  b.push_back(0);
  memory_.write(scratch_, b);
  return scratch_;
}

}  // namespace graft
