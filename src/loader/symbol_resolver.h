// Resolves the library symbols a patch refers to (printf, malloc, ...) to
// their addresses in the running process.
//
// The address the target object itself uses is preferred: its GOT entry for
// the symbol (filled by the dynamic linker, so interposition, copy
// relocations and IFUNC choices are already applied). Otherwise the default
// version of the symbol in the loaded objects' dynamic symbol tables.
//
// An IFUNC (strlen, memcpy, ... in glibc) found that way is the address of
// its *resolver*, not of the function. When the target does not import it:
//   1. the GOT of any other loaded object that imports the same name and
//      version (JUMP_SLOT or GLOB_DAT): the dynamic linker ran the resolver
//      there. The value must be code (an executable mapping) outside that
//      object, since a lazy slot not yet bound points back into its own PLT;
//   2. otherwise the resolver must be run inside the process: lookup()
//      returns an IfuncCall and the caller runs it (loader/ifunc.h), which
//      only an apply with a patch region can do.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "loader/loaded_objects.h"
#include "loader/target_session.h"
#include "process/memory.h"

namespace graft {

// An IFUNC that only its resolver, run in the process, can settle.
struct IfuncCall {
  std::string name;     // "strlen"
  std::string version;  // of the definition, "GLIBC_2.2.5"; "" if unversioned
  const LoadedObject* object = nullptr;  // defines it
  uint64_t resolver = 0;                 // runtime address of the resolver
};

struct SymbolLookup {
  uint64_t address = 0;          // unless `call` is set
  std::optional<IfuncCall> call;
  std::string note;              // how an IFUNC was settled, for the operator
};

class SymbolResolver {
 public:
  SymbolResolver(const std::vector<LoadedObject>& objects, const LoadedObject& target,
                 const std::vector<Mapping>& maps, const ProcessMemory& memory, pid_t pid);
  // The objects, mappings and memory of the session.
  SymbolResolver(TargetSession& session, const LoadedObject& target)
      : SymbolResolver(session.objects(), target, session.maps(), session.memory(), session.pid()) {}
  SymbolLookup lookup(const std::string& name);
  // lookup() for callers that cannot run a resolver: such an IFUNC fails.
  uint64_t resolve(const std::string& name);

 private:
  struct DynamicSymbol {
    const LoadedObject* object;
    uint64_t value;
    bool ifunc;
    std::string version;
  };
  struct GotSlot {
    const LoadedObject* object;  // the importer
    uint64_t address;            // runtime address of the slot
    std::string version;         // asked for by the import
  };
  static std::multimap<std::string, GotSlot> read_imports(const LoadedObject& object);
  const DynamicSymbol& from_dynsym(const std::string& name);
  std::optional<uint64_t> from_other_gots(const DynamicSymbol& d, const std::string& name,
                                          std::string* importer);
  bool is_code(uint64_t address) const;

  const std::vector<LoadedObject>& objects_;
  const LoadedObject& target_;
  const std::vector<Mapping>& maps_;
  const ProcessMemory& memory_;
  pid_t pid_;
  std::multimap<std::string, GotSlot> got_;  // the target's imports
  std::map<std::string, DynamicSymbol> dynsyms_;  // first definition wins
  bool dynsyms_loaded_ = false;
  std::multimap<std::string, GotSlot> other_gots_;  // every other object's imports
  bool other_gots_loaded_ = false;
};

}  // namespace graft
