#include "elf/compile_units.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <unistd.h>

#include <sstream>

namespace graft {

bool producer_enables_ipa_ra(const std::string& producer) {
  if (producer.rfind("GNU", 0) != 0) return true;  // not GCC: assume the worst
  std::istringstream words(producer);
  std::string w;
  bool has_options = false, optimized = false, enabled = true;
  while (words >> w) {
    if (w.rfind("-", 0) == 0) has_options = true;
    if (w.rfind("-O", 0) == 0) optimized = !(w == "-O0" || w == "-O1" || w == "-O" || w == "-Og");
    if (w == "-fno-ipa-ra") enabled = false;
    if (w == "-fipa-ra") enabled = true;
  }
  if (!has_options) return true;  // switches not recorded: unknown
  return optimized && enabled;
}

CompileUnits::CompileUnits(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  Dwarf* dw = dwarf_begin(fd, DWARF_C_READ);
  if (dw) {
    Dwarf_Off off = 0, next;
    size_t header_size;
    while (dwarf_nextcu(dw, off, &next, &header_size, nullptr, nullptr, nullptr) == 0) {
      Dwarf_Die die;
      if (dwarf_offdie(dw, off + header_size, &die)) {
        CompileUnit cu;
        if (const char* n = dwarf_diename(&die)) cu.name = n;
        Dwarf_Attribute attr;
        if (dwarf_attr(&die, DW_AT_producer, &attr))
          if (const char* p = dwarf_formstring(&attr)) cu.producer = p;
        cu.ipa_ra = producer_enables_ipa_ra(cu.producer);
        cu.lto = cu.producer.find("-flto") != std::string::npos ||
                 cu.producer.rfind("GNU GIMPLE", 0) == 0;
        Dwarf_Addr base, start, end;
        ptrdiff_t it = 0;
        while ((it = dwarf_ranges(&die, it, &base, &start, &end)) > 0) cu.ranges.push_back({start, end});
        if (!cu.ranges.empty()) units_.push_back(std::move(cu));
      }
      off = next;
    }
    dwarf_end(dw);
  }
  close(fd);
}

const CompileUnit* CompileUnits::at(uint64_t address) const {
  for (const auto& cu : units_)
    for (const auto& [lo, hi] : cu.ranges)
      if (address >= lo && address < hi) return &cu;
  return nullptr;
}

}  // namespace graft
