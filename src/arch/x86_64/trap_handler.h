// A SIGTRAP handler that graft installs in the target for as long as its
// per-thread transition may leave an `int3' in running code.
//
// Entries are written in running code as the kernel's text_poke_bp does:
// `int3' first. While graft lives, a thread that executes one stops in
// graft (its tracer), which sends it on. If graft is killed between the
// writes, the `int3' stays; without this handler the next thread to call
// the function would die of SIGTRAP. With it, the thread is sent to the
// function's gate, which runs the code of its universe: the process keeps
// working (one signal per call) until the next graft repairs it.
//
// The block, at an address in the patch region's gate pages:
//
//   +0                    handler(sig, info, uc)
//                           pc = uc->rip - 1; look pc up in the site table
//                           found: uc->rip = its destination; return
//                           uc->rip is a destination: return (graft sent
//                           the thread there, and died before it could
//                           discard the signal, see Tracer::reap)
//                           not ours: the target's own action, if it had a
//                           handler (jump to it, same arguments); if not
//                           (SIG_DFL/SIG_IGN), restore SIG_DFL and raise
//                           SIGTRAP again: it dies as it would have
//   +kTrapRestorerOffset  restorer: rt_sigreturn
//   +kTrapSavedOffset     the target's own action (kernel sigaction, graft
//                         writes it when it installs the handler)
//   +kTrapDefaultOffset   a zeroed kernel sigaction (SIG_DFL)
//   +kTrapTableOffset     {site, destination} pairs
#pragma once
#include <cstdint>
#include <vector>

#include "common/hash.h"

namespace graft::arch {

struct TrapSite {
  uint64_t site = 0;  // where graft may leave an int3
  uint64_t to = 0;    // where a thread that executes it goes
};

constexpr size_t kKernelSigactionSize = 32;  // handler, flags, restorer, mask
constexpr size_t kTrapRestorerOffset = 192;
constexpr size_t kTrapSavedOffset = 208;
constexpr size_t kTrapDefaultOffset = kTrapSavedOffset + kKernelSigactionSize;
constexpr size_t kTrapTableOffset = kTrapDefaultOffset + kKernelSigactionSize;

constexpr size_t trap_handler_size(size_t sites) { return kTrapTableOffset + 16 * sites; }
// Code and data of the handler at `at` (16-byte aligned), with a zeroed
// saved action. Throws graft::Error if a site or destination is 0.
Bytes trap_handler_block(uint64_t at, const std::vector<TrapSite>& sites);
// The kernel sigaction that installs the handler at `at`.
Bytes trap_handler_action(uint64_t at);
// The handler field of a kernel sigaction.
uint64_t sigaction_handler(const Bytes& action);

}  // namespace graft::arch
