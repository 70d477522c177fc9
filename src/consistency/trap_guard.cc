#include "consistency/trap_guard.h"

#include <signal.h>
#include <sys/syscall.h>

#include "arch/x86_64/trap_handler.h"
#include "common/error.h"

namespace graft {

namespace {

constexpr size_t kActionSize = arch::kKernelSigactionSize;

// rt_sigaction(SIGTRAP, set, &old) in the target; returns the old action.
Bytes sigtrap_action(RemoteSyscalls& sys, const ProcessMemory& memory, const Bytes* set) {
  Bytes buffer(2 * kActionSize, 0);
  if (set) std::copy(set->begin(), set->end(), buffer.begin());
  RemoteAddress at = sys.scratch(buffer);
  long rc = sys.call(SYS_rt_sigaction, SIGTRAP, set ? at.value : 0, at.value + kActionSize, 8);
  if (rc != 0) fail("process {}: rt_sigaction(SIGTRAP) failed in the target ({})", memory.pid(), rc);
  return memory.read({at.value + kActionSize}, kActionSize);
}

}  // namespace

void install_trap_handler(RemoteSyscalls& sys, const ProcessMemory& memory, uint64_t handler) {
  // Saved before the handler can run: a foreign SIGTRAP it receives goes
  // to the target's own action.
  Bytes own = sigtrap_action(sys, memory, nullptr);
  if (arch::sigaction_handler(own) == handler) return;  // already ours
  memory.write({handler + arch::kTrapSavedOffset}, own);
  Bytes ours = arch::trap_handler_action(handler);
  Bytes before = sigtrap_action(sys, memory, &ours);
  if (before != own) memory.write({handler + arch::kTrapSavedOffset}, before);  // changed meanwhile
}

bool trap_handler_installed(RemoteSyscalls& sys, const ProcessMemory& memory, uint64_t handler) {
  return arch::sigaction_handler(sigtrap_action(sys, memory, nullptr)) == handler;
}

bool remove_trap_handler(RemoteSyscalls& sys, const ProcessMemory& memory, uint64_t handler) {
  if (!trap_handler_installed(sys, memory, handler)) return false;
  Bytes own = memory.read({handler + arch::kTrapSavedOffset}, kActionSize);
  sigtrap_action(sys, memory, &own);
  return true;
}

}  // namespace graft
