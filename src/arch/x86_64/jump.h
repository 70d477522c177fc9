// Function-entry redirection on x86-64.
//
// The redirection is a 5-byte `jmp rel32` (e9 <to - (site + 5)>) written at
// the patch site. The site is the function's entry, or entry+4 when the
// function starts with `endbr64` (f3 0f 1e fa): keeping the landing pad
// intact keeps indirect calls valid under CET/IBT.
#pragma once
#include <cstdint>
#include <optional>
#include <span>

#include "common/hash.h"

namespace graft::arch {

constexpr size_t kRedirectSize = 5;
// The site is at most this far from the entry (past `endbr64`).
constexpr uint64_t kMaxSiteOffset = 4;

// Offset of the patch site from the function entry, given its first bytes.
uint64_t patch_site_offset(std::span<const uint8_t> entry);

// The jmp written at `site` to reach `to`; nullopt if out of rel32 range.
std::optional<Bytes> redirect_bytes(uint64_t site, uint64_t to);

// Largest distance a rel32 reference may span.
constexpr uint64_t kRel32Reach = (uint64_t(1) << 31) - 1;

}  // namespace graft::arch
