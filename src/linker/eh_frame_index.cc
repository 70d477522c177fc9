#include "linker/eh_frame_index.h"

#include <elf.h>
#include <elfutils/libdw.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace graft {

std::vector<FdeRef> read_fdes(const RelocatableObject& object, const ElfSection& eh_frame) {
  Bytes data = object.contents.at(eh_frame.index);
  const std::vector<ElfRela>& relas = object.relocations_of(eh_frame.index);

  static const unsigned char ident[EI_NIDENT] = {ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3,
                                                 ELFCLASS64, ELFDATA2LSB, EV_CURRENT};
  Elf_Data d{};
  d.d_buf = data.data();
  d.d_type = ELF_T_BYTE;
  d.d_size = data.size();
  std::vector<FdeRef> out;
  Dwarf_Off offset = 0, next = 0;
  while (offset < data.size()) {
    Dwarf_CFI_Entry entry;
    int rc = dwarf_next_cfi(ident, &d, true, offset, &next, &entry);
    if (rc == 1) break;
    if (rc != 0) fail("{}: malformed .eh_frame at offset {:#x}", object.name, offset);
    if (!dwarf_cfi_cie_p(&entry)) {
      uint64_t field = static_cast<uint64_t>(entry.fde.start - data.data());
      auto r = std::find_if(relas.begin(), relas.end(), [&](const ElfRela& x) { return x.offset == field; });
      if (r != relas.end()) out.push_back({offset, r->symbol, r->addend, field});
    }
    if (next <= offset) break;
    offset = next;
  }
  return out;
}

void write_eh_frame_hdr(uint8_t* image, uint64_t hdr, uint64_t eh_frame,
                        const std::vector<FdeRef>& fdes, const std::vector<uint64_t>& functions) {
  auto put32 = [&](uint64_t at, uint32_t v) { std::memcpy(image + at, &v, 4); };
  image[hdr] = 1;       // version
  image[hdr + 1] = 0x1b;  // eh_frame_ptr: pcrel | sdata4
  image[hdr + 2] = 0x03;  // fde_count: udata4
  image[hdr + 3] = 0x3b;  // table: datarel | sdata4
  put32(hdr + 4, static_cast<uint32_t>(eh_frame - (hdr + 4)));
  put32(hdr + 8, static_cast<uint32_t>(fdes.size()));
  std::vector<std::pair<int32_t, int32_t>> table;
  for (size_t i = 0; i < fdes.size(); ++i)
    table.push_back({static_cast<int32_t>(functions[i] - hdr),
                     static_cast<int32_t>(eh_frame + fdes[i].fde_offset - hdr)});
  std::sort(table.begin(), table.end());
  for (size_t i = 0; i < table.size(); ++i) {
    put32(hdr + 12 + 8 * i, static_cast<uint32_t>(table[i].first));
    put32(hdr + 16 + 8 * i, static_cast<uint32_t>(table[i].second));
  }
}

}  // namespace graft
