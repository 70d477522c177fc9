// The search table of an .eh_frame section that has no .eh_frame_hdr.
//
// The linker writes .eh_frame_hdr (the sorted FDE index every unwinder
// searches) only for dynamic links: a static executable (glibc or musl
// -static) carries its .eh_frame alone, which libgcc registers at start-up
// inside the process. graft unwinds such a process from outside, so it
// builds the index the header would hold from the section itself.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace graft {

struct FdeEntry {
  uint64_t pc;   // first address the FDE covers
  uint64_t fde;  // address of the FDE record
};

// Every FDE of the section (its bytes `data`, loaded at `vaddr`), sorted by
// pc. FDEs whose CIE uses a pointer encoding graft does not read are left
// out: a pc they cover then has no unwind information, as before. Malformed
// input yields what was read before the damage, never a crash.
std::vector<FdeEntry> eh_frame_table(std::span<const uint8_t> data, uint64_t vaddr);

}  // namespace graft
