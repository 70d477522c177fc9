// Fuzzes the index graft builds from an .eh_frame section that has no
// .eh_frame_hdr (src/elf/eh_frame_table.cc, static executables). The bytes
// come from a file mapped into a possibly hostile target.
//
// Input: the section's bytes, loaded at a fixed address.
#include <cstdint>

#include "elf/eh_frame_table.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using graft::fuzz::require;
  const uint64_t vaddr = 0x401000;
  auto table = graft::eh_frame_table({data, size}, vaddr);
  for (size_t i = 0; i < table.size(); ++i) {
    require(table[i].fde >= vaddr && table[i].fde < vaddr + size, "FDE outside the section");
    require(i == 0 || table[i - 1].pc <= table[i].pc, "index not sorted");
  }
  return 0;
}
