// The input of the patch linker: the sections, symbols and relocations of a
// relocatable object, held in memory. It is read from a compiled patch
// source (graft build --from-source) or assembled by the differ from the
// changed functions of a patched build (graft build --from-diff).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "elf/elf_file.h"

namespace graft {

// What a replacement record says: replace `target` (of source file `file`
// when it is a static) by the function at `symbol` + `addend`.
struct ReplacementRecord {
  std::string target;
  std::string file;
  uint32_t symbol = 0;
  int64_t addend = 0;
};

// An entry thunk added by the linker (entry_thunks.h): the redirect to the
// target function at `function` goes to symbol `symbol`.
struct EntryThunkRecord {
  uint64_t function = 0;  // link-time address in the target
  uint32_t symbol = 0;
  uint32_t preserved = 0;  // arch::RegisterSet
  uint64_t stack_argument_bytes = 0;
};

struct RelocatableObject {
  std::string name;                  // for messages
  std::vector<ElfSection> sections;  // sections[i].index == i; entry 0 is the null section
  std::vector<Bytes> contents;       // per section; empty for SHT_NOBITS
  // Entry 0 is the null symbol. An undefined symbol's `file' names the
  // source file of a static it must resolve to in the target.
  std::vector<ElfSymbol> symbols;
  std::map<size_t, std::vector<ElfRela>> relocations;  // by the section they apply to
  // Set by the differ; a compiled patch source has .graft.replace records.
  std::vector<ReplacementRecord> replacements;
  std::vector<EntryThunkRecord> entry_thunks;

  const ElfSection* section(const std::string& name) const;
  const std::vector<ElfRela>& relocations_of(size_t section) const;

  // Appends a section (and its contents); returns its index.
  size_t add_section(ElfSection section, Bytes contents);
  uint32_t add_symbol(ElfSymbol symbol);
};

// Everything of an ET_REL file; refuses SHT_REL (x86-64 uses SHT_RELA).
RelocatableObject read_relocatable(const ElfFile& object);

}  // namespace graft
