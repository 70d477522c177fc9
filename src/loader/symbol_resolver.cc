#include "loader/symbol_resolver.h"

#include <elf.h>

#include "common/error.h"

namespace graft {

SymbolResolver::SymbolResolver(const std::vector<LoadedObject>& objects,
                               const LoadedObject& target, const std::vector<Mapping>& maps,
                               const ProcessMemory& memory, pid_t pid)
    : objects_(objects), target_(target), maps_(maps), memory_(memory), pid_(pid) {
  read_target_imports();
}

void SymbolResolver::read_target_imports() {
  ElfFile elf(target_.file, target_.path);
  std::vector<ElfSymbol> dynsym = elf.dynamic_symbols();
  for (const auto& s : elf.sections()) {
    if (s.type != SHT_RELA) continue;
    if (s.link == 0 || s.link > elf.sections().size() ||
        elf.sections()[s.link - 1].type != SHT_DYNSYM)
      continue;
    for (const auto& r : elf.relocations(s)) {
      if (r.type != R_X86_64_JUMP_SLOT && r.type != R_X86_64_GLOB_DAT) continue;
      if (r.symbol == 0 || r.symbol >= dynsym.size()) continue;
      got_.emplace(dynsym[r.symbol].name, target_.bias + r.offset);
    }
  }
}

uint64_t SymbolResolver::from_dynsym(const std::string& name) {
  if (!dynsyms_loaded_) {
    // In address order: for a PIE executable, the executable first.
    for (const auto& o : objects_) {
      if (o.build_id.empty()) continue;
      try {
        ElfFile elf(o.file, o.path);
        for (auto& s : elf.dynamic_symbols())
          if (s.defined() && s.default_version && s.bind != STB_LOCAL)
            dynsyms_.emplace(s.name, DynamicSymbol{&o, s.value, s.type == STT_GNU_IFUNC});
      } catch (const Error&) {
        // Unreadable object: its symbols are not offered.
      }
    }
    dynsyms_loaded_ = true;
  }
  auto it = dynsyms_.find(name);
  if (it == dynsyms_.end()) fail("process {}: symbol `{}' is not defined by any loaded object", pid_, name);
  const DynamicSymbol& d = it->second;
  if (d.ifunc)
    fail("process {}: `{}' is an IFUNC in {} and {} does not import it; graft cannot tell "
         "which implementation to call",
         pid_, name, d.object->path, target_.path);
  return d.object->bias + d.value;
}

uint64_t SymbolResolver::resolve(const std::string& name) {
  if (auto it = got_.find(name); it != got_.end()) {
    uint64_t value = 0;
    if (memory_.try_read({it->second}, &value, sizeof value) && value != 0) {
      // Copy relocations put data in anonymous memory: any mapping will do.
      for (const auto& m : maps_)
        if (m.contains(value)) return value;
    }
  }
  return from_dynsym(name);
}

}  // namespace graft
