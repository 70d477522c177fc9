// GCC's inter-procedural register allocation (-fipa-ra, on at -O2) lets a
// caller keep values in call-clobbered registers across a call when it knows
// the callee does not touch them. A replacement compiled on its own follows
// only the ABI and may change those registers: the caller would then compute
// with garbage. kpatch is spared by -pg/-mfentry, which disables IPA-RA;
// userspace binaries are not.
//
// This check finds, for each replaced function, the call-clobbered
// registers its replacement may change and the original never does, then
// every direct caller (transitively, through callers whose own effective
// clobber set grows) that keeps one of them live across the call. The
// analysis decodes the target's code with Zydis and is conservative: what
// it cannot follow (an indirect jump) counts as reliance.
//
// Where callers rely on such registers, the builder puts an entry thunk
// (arch/x86_64/entry_thunk.h) in front of the replacement that saves and
// restores exactly those, less the registers that carry the function's
// return value (the original writes those, so no caller can rely on them
// keeping their value). The thunk needs to know the size of the
// stack-passed arguments: it reads the original's signature from the
// target's DWARF. Where it cannot be built, the patch is refused.
#pragma once
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "patch/patch.h"

namespace graft {

// What a replaced function's entry thunk must do.
struct ThunkRequest {
  size_t function = 0;  // index in Patch::functions
  arch::RegisterSet preserved = 0;
  uint64_t stack_argument_bytes = 0;
  // For the patch author: the callers that rely on the registers.
  std::string note;
};

struct RegisterContract {
  std::vector<ThunkRequest> thunks;
  // Callers that may rely on a register only through a call whose
  // arguments graft cannot count, where no thunk could be built.
  std::vector<std::string> warnings;
};

// Throws graft::Error naming the first caller that certainly relies on a
// register the replacement may change when no entry thunk can keep it
// (and why). With `thunks` false (GRAFT_ENTRY_THUNKS=off, for tests that
// show what the thunk prevents), reliance is only a warning.
RegisterContract check_register_contract(const ElfFile& target, const Patch& patch, bool thunks = true);

}  // namespace graft
