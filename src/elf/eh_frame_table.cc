#include "elf/eh_frame_table.h"

#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

namespace graft {

namespace {

// Size of a pointer in encoding `enc' (DW_EH_PE_*), or nullopt for the
// variable-length and unusual forms, which no x86-64 toolchain emits for
// FDE addresses.
std::optional<size_t> encoded_size(uint8_t enc) {
  switch (enc & 0x0f) {
    case DW_EH_PE_absptr:
    case DW_EH_PE_udata8:
    case DW_EH_PE_sdata8:
      return 8;
    case DW_EH_PE_udata4:
    case DW_EH_PE_sdata4:
      return 4;
    case DW_EH_PE_udata2:
    case DW_EH_PE_sdata2:
      return 2;
    default:
      return std::nullopt;
  }
}

// The FDE pointer encoding of a CIE (its 'R' augmentation), nullopt if the
// augmentation cannot be read.
std::optional<uint8_t> fde_encoding(const Dwarf_CIE& cie) {
  const char* aug = cie.augmentation;
  if (!aug || aug[0] != 'z') return aug && aug[0] == 0 ? std::optional<uint8_t>(DW_EH_PE_absptr) : std::nullopt;
  const uint8_t* p = cie.augmentation_data;
  const uint8_t* end = p + cie.augmentation_data_size;
  for (const char* c = aug + 1; *c; ++c) {
    switch (*c) {
      case 'R':
        if (p >= end) return std::nullopt;
        return *p;
      case 'L':
        ++p;
        break;
      case 'P': {
        if (p >= end) return std::nullopt;
        auto size = encoded_size(*p);
        if (!size || (*p & 0x70) == DW_EH_PE_aligned) return std::nullopt;
        p += 1 + *size;
        break;
      }
      case 'S':
      case 'B':
      case 'G':
        break;
      default:
        return std::nullopt;
    }
  }
  return DW_EH_PE_absptr;
}

std::optional<uint64_t> read_pointer(const uint8_t* at, const uint8_t* end, uint8_t enc, uint64_t field) {
  auto size = encoded_size(enc);
  if (!size || at + *size > end) return std::nullopt;
  uint64_t v = 0;
  switch (enc & 0x0f) {
    case DW_EH_PE_sdata2: {
      int16_t s;
      std::memcpy(&s, at, 2);
      v = static_cast<uint64_t>(static_cast<int64_t>(s));
      break;
    }
    case DW_EH_PE_sdata4: {
      int32_t s;
      std::memcpy(&s, at, 4);
      v = static_cast<uint64_t>(static_cast<int64_t>(s));
      break;
    }
    default:
      std::memcpy(&v, at, *size);  // little-endian, zero-extended
  }
  switch (enc & 0x70) {
    case DW_EH_PE_absptr:
      return v;
    case DW_EH_PE_pcrel:
      return field + v;
    default:
      return std::nullopt;  // datarel, textrel, funcrel: not for FDE addresses
  }
}

}  // namespace

std::vector<FdeEntry> eh_frame_table(std::span<const uint8_t> data, uint64_t vaddr) {
  std::vector<FdeEntry> out;
  if (data.empty()) return out;
  unsigned char ident[EI_NIDENT] = {ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB, EV_CURRENT};
  Elf_Data d{};
  d.d_buf = const_cast<uint8_t*>(data.data());
  d.d_size = data.size();
  d.d_type = ELF_T_BYTE;
  const uint8_t* base = data.data();
  const uint8_t* end = base + data.size();

  // CIEs by section offset; an FDE may precede its CIE.
  std::map<Dwarf_Off, std::optional<uint8_t>> cies;
  struct Fde {
    Dwarf_Off cie;
    const uint8_t* start;
    const uint8_t* end;
    Dwarf_Off offset;
  };
  std::vector<Fde> fdes;
  for (Dwarf_Off off = 0, next = 0; off < data.size(); off = next) {
    Dwarf_CFI_Entry e;
    int rc = dwarf_next_cfi(ident, &d, true, off, &next, &e);
    if (rc == 1) break;
    if (rc != 0) {
      if (next == static_cast<Dwarf_Off>(-1) || next <= off) break;
      continue;  // unusable entry, skipped
    }
    if (dwarf_cfi_cie_p(&e))
      cies[off] = fde_encoding(e.cie);
    else
      fdes.push_back({e.fde.CIE_pointer, e.fde.start, e.fde.end, off});
  }
  for (const Fde& f : fdes) {
    auto cie = cies.find(f.cie);
    if (cie == cies.end() || !cie->second) continue;
    if (f.start < base || f.start >= end) continue;
    uint64_t field = vaddr + static_cast<uint64_t>(f.start - base);
    auto pc = read_pointer(f.start, std::min(f.end, end), *cie->second, field);
    if (!pc || *pc == 0) continue;  // a discarded function's FDE
    out.push_back({*pc, vaddr + f.offset});
  }
  std::sort(out.begin(), out.end(), [](const FdeEntry& a, const FdeEntry& b) { return a.pc < b.pc; });
  return out;
}

}  // namespace graft
