// Resolves the library symbols a patch refers to (printf, malloc, ...) to
// their addresses in the running process.
//
// The address the target object itself uses is preferred: its GOT entry for
// the symbol (filled by the dynamic linker, so interposition, copy
// relocations and IFUNC choices are already applied). Otherwise the default
// version of the symbol in the loaded objects' dynamic symbol tables.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "loader/loaded_objects.h"
#include "process/memory.h"

namespace graft {

class SymbolResolver {
 public:
  SymbolResolver(const std::vector<LoadedObject>& objects, const LoadedObject& target,
                 const std::vector<Mapping>& maps, const ProcessMemory& memory, pid_t pid);
  uint64_t resolve(const std::string& name);

 private:
  void read_target_imports();
  uint64_t from_dynsym(const std::string& name);

  const std::vector<LoadedObject>& objects_;
  const LoadedObject& target_;
  const std::vector<Mapping>& maps_;
  const ProcessMemory& memory_;
  pid_t pid_;
  std::map<std::string, uint64_t> got_;  // symbol -> runtime address of its GOT slot
  struct DynamicSymbol {
    const LoadedObject* object;
    uint64_t value;
    bool ifunc;
  };
  std::map<std::string, DynamicSymbol> dynsyms_;  // first definition wins
  bool dynsyms_loaded_ = false;
};

}  // namespace graft
