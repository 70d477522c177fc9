// Fuzzes how graft finds a mapped object's unwind table in the target's
// memory (src/consistency/unwind_tables.cc): the first page of the object
// (ELF and program headers, as the target's memory holds them, parsed with
// libelf) and the 12-byte .eh_frame_hdr header it points to. Both come from
// a possibly hostile target.
//
// Input: up to 4096 bytes of "first page", then 12 bytes of header (the
// last 12 bytes of the input when it is longer than 12).
#include <cstdint>
#include <cstring>

#include "consistency/unwind_tables.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using graft::fuzz::require;
  if (size < 12) return 0;
  std::span<const uint8_t> page(data, std::min<size_t>(size - 12, 4096));
  uint64_t base = 0x555555554000;
  auto hdr = graft::eh_frame_hdr_address(page, base);
  uint8_t h[12];
  std::memcpy(h, data + size - 12, 12);
  uint64_t at = hdr.value_or(base + 0x2000);
  auto info = graft::remote_table(std::span<const uint8_t, 12>(h), at, base + 0x1000, base + 0x2000);
  if (info) {
    require(info->u.rti.segbase == at && info->u.rti.table_data == at + 12, "table misplaced");
    require(info->u.rti.table_len > 0 && info->u.rti.table_data + info->u.rti.table_len * 8 > at,
            "empty or wrapping table");
  }
  return 0;
}
