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
// clobber set grows) that keeps one of them live across the call. Any such
// caller makes the build fail with the caller, the call site and the
// registers. The analysis decodes the target's code with Zydis and is
// conservative: what it cannot follow (an indirect jump) counts as reliance.
#pragma once
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "patch/patch.h"

namespace graft {

// Throws graft::Error naming the first caller that certainly relies on a
// register the replacement may change (a read by an instruction). Returns
// warnings for callers that may rely on one only through a call whose
// arguments graft cannot count.
std::vector<std::string> check_register_contract(const ElfFile& target, const Patch& patch);

}  // namespace graft
