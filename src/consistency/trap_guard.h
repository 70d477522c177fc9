// Installs and removes graft's SIGTRAP handler (arch/x86_64/trap_handler.h)
// in a target, for the time a per-thread transition may leave an int3 in
// running code. Both run one system call in the target: `sys' borrows a
// stopped thread.
#pragma once
#include <cstdint>

#include "process/memory.h"
#include "process/remote_syscalls.h"

namespace graft {

// Saves the target's own SIGTRAP action into the handler block at
// `handler`, then installs the handler.
void install_trap_handler(RemoteSyscalls& sys, const ProcessMemory& memory, uint64_t handler);

// Puts the saved action back if the handler at `handler` is still the one
// installed (the target may have set its own since); returns whether it did.
bool remove_trap_handler(RemoteSyscalls& sys, const ProcessMemory& memory, uint64_t handler);

// Whether the handler at `handler` is the target's SIGTRAP action now.
bool trap_handler_installed(RemoteSyscalls& sys, const ProcessMemory& memory, uint64_t handler);

}  // namespace graft
