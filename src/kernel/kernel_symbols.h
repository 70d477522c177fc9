// The symbols of a kernel, read from System.map (build time) or
// /proc/kallsyms (run time): both list "ADDRESS TYPE NAME [MODULE]" lines.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace graft::kernel {

struct KernelSymbol {
  uint64_t address = 0;
  char type = '?';       // nm's letter: t/T text, d/D data, b/B bss, r/R rodata, ...
  std::string name;
  std::string module;    // "" for vmlinux
  bool text() const { return type == 't' || type == 'T' || type == 'w' || type == 'W'; }
};

class SymbolTable {
 public:
  // `origin` names the file in messages. Refuses malformed lines.
  static SymbolTable parse(std::string_view text, const std::string& origin);
  static SymbolTable read(const std::string& path);

  const std::string& origin() const { return origin_; }
  // vmlinux's symbols of that name, in address (kallsyms) order.
  std::vector<const KernelSymbol*> vmlinux_named(const std::string& name) const;
  // The symbol livepatch means by NAME,POS (POS 0: the name must be unique).
  // Throws naming the symbol when it is missing or ambiguous.
  const KernelSymbol& resolve(const std::string& name, unsigned pos) const;
  // The first vmlinux symbol after `address` at a higher address, or null.
  const KernelSymbol* next_after(uint64_t address) const;
  const KernelSymbol* first(const std::string& name) const;
  // The last vmlinux text symbol at or below `address`, or null; among
  // several names at that symbol's address (memcpy and __memcpy), the one
  // named `preferred' if it is one of them.
  const KernelSymbol* text_at(uint64_t address, const std::string& preferred = "") const;
  size_t size() const { return symbols_.size(); }
  // A loaded module's symbols of that name, in /proc/kallsyms order (the
  // order livepatch counts positions in).
  std::vector<const KernelSymbol*> module_named(const std::string& module, const std::string& name) const;
  bool module_loaded(const std::string& module) const;
  // The module's first symbol above `address`, or null.
  const KernelSymbol* module_next_after(const std::string& module, uint64_t address) const;

 private:
  std::string origin_;
  std::vector<KernelSymbol> symbols_;                    // vmlinux, sorted by address
  std::multimap<std::string, size_t> by_name_;           // into symbols_
  std::vector<KernelSymbol> module_symbols_;             // loaded modules', in file order
};

// Names the kernel and its modules export, each with its exporter:
// "vmlinux" or a module's name (Module.symvers of the headers).
std::map<std::string, std::string> read_exported_symbols(const std::string& module_symvers);

}  // namespace graft::kernel
