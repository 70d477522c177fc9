// A loadable kernel module as the kernel package ships it (M.ko, a
// relocatable object), laid out as the module loader would: each allocated
// section at an address of its own, relocations applied, every undefined
// symbol at a distinct address. That lets the differ's code comparison
// (target_match.h) check a function compiled from the tree against the
// shipped one, branch targets named, and tells which of the module's
// symbols a reference of the original code reaches.
//
// Livepatch finds a module's symbol NAME,POS among that module's kallsyms
// (kernel/livepatch/core.c klp_find_object_symbol): the module's own
// symbol table in file order, keeping symbols defined in allocated
// sections; POS 0 when the name is unique, else 1-based in that order.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "differ/target_match.h"
#include "elf/elf_file.h"
#include "kernel/manifest.h"

namespace graft::kernel {

class ShippedModule {
 public:
  // `name` is the module's name (KBUILD_MODNAME), `path` its .ko file.
  ShippedModule(const std::string& path, std::string name);
  ShippedModule(const ShippedModule&) = delete;
  ShippedModule& operator=(const ShippedModule&) = delete;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }

  // Indexes into symbols() of the symbols named `name` livepatch can find,
  // in its order (POS k is element k-1).
  std::vector<size_t> named(const std::string& name) const;
  const std::vector<ElfSymbol>& symbols() const { return elf_.symbols(); }
  // The laid-out address of a defined symbol.
  uint64_t address_of(size_t symbol) const;
  // The code of function `symbol`, laid out, for code_mismatch.
  RunningFunction code(size_t symbol) const;
  // The function at a laid-out address (target_match.h's SymbolAt).
  std::string function_at(uint64_t address, int64_t* offset, const std::string& wanted) const;
  // The defined symbol whose extent holds a laid-out address, or npos.
  size_t symbol_holding(uint64_t address) const;
  // POS of symbol `symbol` among those of its name (0: unique).
  unsigned position_of(size_t symbol) const;

  // The function livepatch would patch for NAME,POS with its fingerprint:
  // its bytes as in the file, the relocated fields and the sites the
  // kernel rewrites masked. Throws naming the function if it cannot be
  // patched: missing, ambiguous, not code, __init, no ftrace site.
  FunctionFingerprint patchable_function(const std::string& name, unsigned pos) const;
  // The bytes of NAME,POS as the file holds them (unrelocated).
  Bytes file_bytes(const std::string& name, unsigned pos) const;

  static constexpr size_t npos = ~size_t(0);

 private:
  size_t resolve(const std::string& name, unsigned pos) const;
  const ElfSection& section(size_t index) const;
  void lay_out();
  void load_patch_sites();

  std::string path_, name_;
  ElfFile elf_;
  std::vector<uint64_t> section_address_;  // by section index; 0: not allocated
  std::map<uint64_t, Bytes> image_;         // laid-out sections by address
  std::vector<uint64_t> undefined_address_; // by symbol index
  std::map<uint64_t, std::vector<size_t>> functions_;  // address -> symbols
  std::map<uint64_t, std::vector<size_t>> by_address_; // every defined symbol
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> relocated_;  // by section: (offset, width)
  std::vector<std::tuple<uint64_t, uint32_t, std::string>> patch_sites_;  // laid-out address, length, reason
  std::set<uint64_t> ftrace_sites_;
};

}  // namespace graft::kernel
