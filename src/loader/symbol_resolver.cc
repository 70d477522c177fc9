#include "loader/symbol_resolver.h"

#include <elf.h>

#include "common/error.h"

namespace graft {

SymbolResolver::SymbolResolver(const std::vector<LoadedObject>& objects,
                               const LoadedObject& target, const std::vector<Mapping>& maps,
                               const ProcessMemory& memory, pid_t pid)
    : objects_(objects), target_(target), maps_(maps), memory_(memory), pid_(pid) {
  got_ = read_imports(target_);
}

// The GOT slots an object's dynamic relocations fill by symbol name.
std::multimap<std::string, SymbolResolver::GotSlot> SymbolResolver::read_imports(
    const LoadedObject& object) {
  std::multimap<std::string, GotSlot> slots;
  ElfFile elf(object.file, object.path);
  std::vector<ElfSymbol> dynsym = elf.dynamic_symbols();
  for (const auto& s : elf.sections()) {
    if (s.type != SHT_RELA) continue;
    if (s.link == 0 || s.link > elf.sections().size() ||
        elf.sections()[s.link - 1].type != SHT_DYNSYM)
      continue;
    for (const auto& r : elf.relocations(s)) {
      if (r.type != R_X86_64_JUMP_SLOT && r.type != R_X86_64_GLOB_DAT) continue;
      if (r.symbol == 0 || r.symbol >= dynsym.size()) continue;
      const ElfSymbol& sym = dynsym[r.symbol];
      slots.emplace(sym.name, GotSlot{&object, object.bias + r.offset, sym.version});
    }
  }
  return slots;
}

const SymbolResolver::DynamicSymbol& SymbolResolver::from_dynsym(const std::string& name) {
  if (!dynsyms_loaded_) {
    // In address order: for a PIE executable, the executable first.
    for (const auto& o : objects_) {
      if (o.build_id.empty()) continue;
      try {
        ElfFile elf(o.file, o.path);
        for (auto& s : elf.dynamic_symbols())
          if (s.defined() && s.default_version && s.bind != STB_LOCAL)
            dynsyms_.emplace(s.name, DynamicSymbol{&o, s.value, s.type == STT_GNU_IFUNC, s.version});
      } catch (const Error&) {
        // Unreadable object: its symbols are not offered.
      }
    }
    dynsyms_loaded_ = true;
  }
  auto it = dynsyms_.find(name);
  if (it == dynsyms_.end()) fail("process {}: symbol `{}' is not defined by any loaded object", pid_, name);
  return it->second;
}

bool SymbolResolver::is_code(uint64_t address) const {
  for (const auto& m : maps_)
    if (m.contains(address)) return m.exec;
  return false;
}

std::optional<uint64_t> SymbolResolver::from_other_gots(const DynamicSymbol& d,
                                                        const std::string& name,
                                                        std::string* importer) {
  if (!other_gots_loaded_) {
    for (const auto& o : objects_) {  // address order, as from_dynsym
      if (o.build_id.empty() || o.start == target_.start) continue;
      try {
        other_gots_.merge(read_imports(o));
      } catch (const Error&) {
        // Unreadable object: its GOT is not consulted.
      }
    }
    other_gots_loaded_ = true;
  }
  auto [begin, end] = other_gots_.equal_range(name);
  for (auto it = begin; it != end; ++it) {
    const GotSlot& slot = it->second;
    // The same symbol: an import of another version may be bound elsewhere
    // (memcpy@GLIBC_2.2.5 is memmove).
    if (!slot.version.empty() && !d.version.empty() && slot.version != d.version) continue;
    uint64_t value = 0;
    if (!memory_.try_read({slot.address}, &value, sizeof value) || value == 0) continue;
    // A lazy slot not bound yet points into the importer's own PLT.
    if (value >= slot.object->start && value < slot.object->end) continue;
    if (!is_code(value)) continue;
    *importer = slot.object->path;
    return value;
  }
  return std::nullopt;
}

SymbolLookup SymbolResolver::lookup(const std::string& name) {
  auto [begin, end] = got_.equal_range(name);
  for (auto it = begin; it != end; ++it) {
    uint64_t value = 0;
    if (memory_.try_read({it->second.address}, &value, sizeof value) && value != 0) {
      // Copy relocations put data in anonymous memory: any mapping will do.
      for (const auto& m : maps_)
        if (m.contains(value)) return {value, std::nullopt, ""};
    }
  }
  const DynamicSymbol& d = from_dynsym(name);
  if (!d.ifunc) return {d.object->bias + d.value, std::nullopt, ""};

  std::string importer;
  if (auto value = from_other_gots(d, name, &importer))
    return {*value, std::nullopt,
            fmt::format("`{}' (an IFUNC of {}): {:#x}, as bound in the GOT of {}", name,
                        d.object->path, *value, importer)};
  return {0, IfuncCall{name, d.version, d.object, d.object->bias + d.value}, ""};
}

uint64_t SymbolResolver::resolve(const std::string& name) {
  SymbolLookup l = lookup(name);
  if (l.call)
    fail("process {}: `{}' is an IFUNC in {} that no loaded object imports; graft runs IFUNC "
         "resolvers only for a patch's own references",
         pid_, name, l.call->object->path);
  return l.address;
}

}  // namespace graft
