// Relocating the instructions a function-entry jump displaces, so that the
// old code can still run while a per-thread transition is in progress.
//
// The 5-byte `jmp` at a patch site overwrites the first instructions of the
// function (at least 5 bytes of them, whole instructions). A thread still in
// the old universe runs those instructions from a copy elsewhere (the "old
// path"), then jumps back to site+N:
//
//   site:     55                 push %rbp           old path: 55              push %rbp
//             48 8b 05 f1 2f 00  mov 0x2ff1(%rip),%rax         48 8b 05 <d'>   mov <same address>,%rax
//   site+N:   ...                                               e9 <site+N>     jmp back
//
// A copy must compute exactly what the original computed: RIP-relative
// operands are re-encoded for the new address; rel8/rel32 branches and calls
// become rel32 forms aimed at the same target. What cannot be moved is
// refused with the reason: a branch into the displaced bytes themselves,
// loop/jrcxz/xbegin (no rel32 form), an instruction that ends the flow
// (ret, jmp, ud2...) before the 5 bytes are covered, undecodable bytes.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/hash.h"

namespace graft::arch {

struct DisplacedCode {
  size_t length = 0;                 // N: bytes displaced at the site (>= kRedirectSize)
  std::vector<size_t> boundaries;    // offsets of the instructions after the first (0 < b < N)
  std::vector<size_t> old_path_offsets;  // where each of them is in old_path
  Bytes old_path;                    // relocated copy + jmp back to site+N, for `at`
};

// Relocates the instructions at `site` (its running bytes, `code`, at least
// kRedirectSize + 15 bytes when the function is that long) to run at `at`.
// Throws graft::Error naming `function` when they cannot run elsewhere.
DisplacedCode relocate_displaced(std::span<const uint8_t> code, uint64_t site, uint64_t at,
                                 const std::string& function);

// Bytes relocate_displaced() may produce at most for one site.
constexpr size_t kMaxOldPathSize = 96;

// Checks that no direct branch of the function (its bytes `code` at
// `address`) lands inside the displaced bytes (site, site+length): after the
// jump is written, such a branch would land in the middle of it. Throws
// graft::Error naming `function` otherwise.
void check_no_branch_into(std::span<const uint8_t> code, uint64_t address, uint64_t site,
                          size_t length, const std::string& function);

}  // namespace graft::arch
