// Symbol lookup in the target object (executable or shared library) a patch
// is built against: by name, by demangled C++ signature, and by source file
// for static symbols that exist in several files.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "elf/elf_file.h"

namespace graft {

// Which symbols: the symbol table (the file's, or its separate debug
// file's), or only what a stripped file exports (.dynsym), enough to
// compare its exported functions with a build.
enum class SymbolTable { full, exported };

class TargetSymbols {
 public:
  explicit TargetSymbols(const ElfFile& target, SymbolTable table = SymbolTable::full);
  TargetSymbols(const TargetSymbols&) = delete;
  TargetSymbols& operator=(const TargetSymbols&) = delete;
  // Every symbol of the table it reads.
  const std::vector<ElfSymbol>& all() const { return *symbols_; }
  // Only exported symbols: an address in none of them may be a static.
  bool exported_only() const { return symbols_ == &exported_; }

  // The function `name` (symbol or full demangled signature), restricted to
  // source file `file` when not empty. Throws with the candidates when the
  // name is missing or ambiguous.
  const ElfSymbol& function(const std::string& name, const std::string& file) const;

  // A defined data or function symbol for a reference from patch code:
  // a global first, then a unique local (restricted to `file` if given).
  // Returns nullptr when the target does not define it.
  const ElfSymbol* reference(const std::string& name, const std::string& file) const;

  // Local pieces split off a function by the compiler (`f.cold`, `f.cold.1`).
  std::vector<const ElfSymbol*> cold_parts(const ElfSymbol& function) const;

 private:
  std::vector<const ElfSymbol*> candidates(const std::string& name) const;

  const ElfFile& elf_;
  std::vector<ElfSymbol> exported_;  // SymbolTable::exported
  const std::vector<ElfSymbol>* symbols_;
  std::unordered_map<std::string, std::vector<size_t>> by_name_;
  mutable std::unordered_map<std::string, std::vector<size_t>> by_demangled_;
  mutable bool demangled_ready_ = false;
};

// Basename comparison used for STT_FILE names ("src/a.c" matches "a.c").
bool same_source_file(const std::string& symbol_file, const std::string& wanted);

}  // namespace graft
