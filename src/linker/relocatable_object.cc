#include "linker/relocatable_object.h"

#include <elf.h>

#include "common/error.h"

namespace graft {

const ElfSection* RelocatableObject::section(const std::string& n) const {
  for (const auto& s : sections)
    if (s.index != 0 && s.name == n) return &s;
  return nullptr;
}

const std::vector<ElfRela>& RelocatableObject::relocations_of(size_t s) const {
  static const std::vector<ElfRela> none;
  auto it = relocations.find(s);
  return it == relocations.end() ? none : it->second;
}

size_t RelocatableObject::add_section(ElfSection section, Bytes data) {
  if (sections.empty()) {
    sections.push_back({});
    contents.emplace_back();
  }
  section.index = sections.size();
  sections.push_back(std::move(section));
  contents.push_back(std::move(data));
  return sections.size() - 1;
}

uint32_t RelocatableObject::add_symbol(ElfSymbol symbol) {
  if (symbols.empty()) symbols.push_back({});
  symbols.push_back(std::move(symbol));
  return static_cast<uint32_t>(symbols.size() - 1);
}

RelocatableObject read_relocatable(const ElfFile& object) {
  if (object.type() != ET_REL) fail("{}: not a relocatable object", object.name());
  RelocatableObject out;
  out.name = object.name();
  out.sections.push_back({});
  out.contents.emplace_back();
  for (const auto& s : object.sections()) {
    if (s.index != out.sections.size()) fail("{}: section indexes are not contiguous", object.name());
    out.sections.push_back(s);
    out.contents.push_back(object.section_data(s.index));
  }
  out.symbols = object.symbols();
  for (const auto& s : object.sections()) {
    if (s.type == SHT_REL) fail("{}: SHT_REL relocations are not supported on x86-64", object.name());
    if (s.type != SHT_RELA) continue;
    if (s.info == 0 || s.info >= out.sections.size())
      fail("{}: relocation section {} applies to no section", object.name(), s.name);
    auto relas = object.relocations(s);
    for (const auto& r : relas)
      if (r.symbol >= out.symbols.size())
        fail("{}: relocation in {} refers to symbol {} of {}", object.name(), s.name, r.symbol,
             out.symbols.size());
    auto& list = out.relocations[s.info];
    list.insert(list.end(), relas.begin(), relas.end());
  }
  return out;
}

}  // namespace graft
