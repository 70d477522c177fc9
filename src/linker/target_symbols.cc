#include "linker/target_symbols.h"

#include <elf.h>

#include "elf/debug_package.h"
#include "common/error.h"
#include "elf/separate_debug.h"

namespace graft {

namespace {
bool is_definition(const ElfSymbol& s) {
  return s.defined() && (s.type == STT_FUNC || s.type == STT_OBJECT || s.type == STT_NOTYPE ||
                         s.type == STT_GNU_IFUNC) &&
         !s.name.empty();
}

std::string describe(const ElfSymbol& s) {
  return fmt::format("{}{}{}", s.name, s.file.empty() ? "" : " in ", s.file);
}
}  // namespace

bool same_source_file(const std::string& symbol_file, const std::string& wanted) {
  if (symbol_file == wanted) return true;
  auto base = [](const std::string& p) {
    auto slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
  };
  return base(symbol_file) == base(wanted);
}

TargetSymbols::TargetSymbols(const ElfFile& target, SymbolTable table)
    : elf_(target), symbols_(&target.symbols()) {
  if (table == SymbolTable::exported) {
    exported_ = target.dynamic_symbols();
    symbols_ = &exported_;
  } else if (!target.has_symtab()) {
    fail("{}: is stripped (no .symtab) and no separate debug file matches it (looked for {}); {}",
         target.name(), debug_file_places(target.path()), debug_package_advice(target.path()));
  }
  const auto& syms = *symbols_;
  for (size_t i = 0; i < syms.size(); ++i)
    if (is_definition(syms[i])) by_name_[syms[i].name].push_back(i);
}

std::vector<const ElfSymbol*> TargetSymbols::candidates(const std::string& name) const {
  std::vector<const ElfSymbol*> out;
  const auto& syms = *symbols_;
  if (auto it = by_name_.find(name); it != by_name_.end())
    for (size_t i : it->second) out.push_back(&syms[i]);
  // A C++ declaration cannot say "static": `_Z5labelv' in the patch is
  // `_ZL5labelv' in the target when the function has internal linkage.
  if (out.empty() && name.size() > 2 && name.compare(0, 2, "_Z") == 0 && name[2] != 'L')
    if (auto it = by_name_.find("_ZL" + name.substr(2)); it != by_name_.end())
      for (size_t i : it->second) out.push_back(&syms[i]);
  if (!out.empty()) return out;
  if (!demangled_ready_) {
    for (const auto& [n, idx] : by_name_) {
      std::string d = demangle(n);
      if (!d.empty())
        for (size_t i : idx) by_demangled_[d].push_back(i);
    }
    demangled_ready_ = true;
  }
  if (auto it = by_demangled_.find(name); it != by_demangled_.end())
    for (size_t i : it->second) out.push_back(&syms[i]);
  return out;
}

const ElfSymbol& TargetSymbols::function(const std::string& name, const std::string& file) const {
  std::vector<const ElfSymbol*> found;
  for (const ElfSymbol* s : candidates(name)) {
    if (s->type != STT_FUNC && s->type != STT_GNU_IFUNC) continue;
    if (!file.empty() && (s->bind != STB_LOCAL || !same_source_file(s->file, file))) continue;
    found.push_back(s);
  }
  if (found.empty()) {
    if (!file.empty()) fail("{}: no function `{}' in source file {}", elf_.name(), name, file);
    fail("{}: no function `{}'", elf_.name(), name);
  }
  if (found.size() > 1) {
    std::string list;
    for (const ElfSymbol* s : found) list += (list.empty() ? "" : ", ") + describe(*s);
    fail("{}: function `{}' is ambiguous ({}); name its source file with GRAFT_REPLACE_LOCAL",
         elf_.name(), name, list);
  }
  if (found[0]->type == STT_GNU_IFUNC)
    fail("{}: `{}' is an IFUNC resolver, which graft cannot replace", elf_.name(), name);
  return *found[0];
}

const ElfSymbol* TargetSymbols::reference(const std::string& name, const std::string& file) const {
  std::vector<const ElfSymbol*> locals;
  for (const ElfSymbol* s : candidates(name)) {
    if (s->bind != STB_LOCAL) {
      if (file.empty()) return s;
      continue;
    }
    if (file.empty() || same_source_file(s->file, file)) locals.push_back(s);
  }
  if (locals.empty()) {
    if (!file.empty()) fail("{}: no static symbol `{}' in source file {}", elf_.name(), name, file);
    return nullptr;
  }
  if (locals.size() > 1) {
    std::string list;
    for (const ElfSymbol* s : locals) list += (list.empty() ? "" : ", ") + describe(*s);
    fail("{}: static symbol `{}' exists in several files ({}); pin it with "
         "GRAFT_RESOLVE_LOCAL({}, \"file.c\")",
         elf_.name(), name, list, name);
  }
  return locals[0];
}

std::vector<const ElfSymbol*> TargetSymbols::cold_parts(const ElfSymbol& function) const {
  std::vector<const ElfSymbol*> out;
  const std::string prefix = function.name + ".cold";
  for (const auto& s : *symbols_) {
    if (s.bind != STB_LOCAL || !s.defined() || s.name.compare(0, prefix.size(), prefix) != 0)
      continue;
    if (s.name.size() != prefix.size() && s.name[prefix.size()] != '.') continue;
    if (function.bind == STB_LOCAL && !same_source_file(s.file, function.file)) continue;
    out.push_back(&s);
  }
  return out;
}

}  // namespace graft
