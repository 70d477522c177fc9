// Read-only view of an ELF file (executable, shared library or relocatable
// object) through libelf. Everything returned is copied out and checked
// against the file's bounds, so a corrupt file yields graft::Error, never a
// crash.
#pragma once
#include <libelf.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/hash.h"

namespace graft {

struct ElfSymbol {
  std::string name;
  uint64_t value = 0;
  uint64_t size = 0;
  uint8_t type = 0;     // STT_*
  uint8_t bind = 0;     // STB_*
  uint8_t visibility = 0;  // STV_*
  uint16_t shndx = 0;   // SHN_UNDEF for an undefined symbol
  std::string file;     // STT_FILE in force for a local symbol ("" if none)
  bool default_version = true;  // .dynsym: not a hidden (non-default) version
  // .dynsym: the version a definition has or an import asks for
  // ("GLIBC_2.14"); "" when unversioned.
  std::string version;
  bool defined() const { return shndx != 0; }
};

struct ElfSection {
  size_t index = 0;
  std::string name;
  uint32_t type = 0;
  uint64_t flags = 0;
  uint64_t addr = 0;
  uint64_t size = 0;
  uint64_t align = 1;
  uint32_t link = 0;
  uint32_t info = 0;
  uint64_t entsize = 0;
};

struct ElfRela {
  uint64_t offset;
  uint32_t type;
  uint32_t symbol;  // index into symbols()
  int64_t addend;
};

struct LoadSegment {
  uint64_t vaddr, memsz, offset, filesz;
  uint32_t flags;  // PF_*
};

class ElfFile {
 public:
  // Opens `path`; `display` names it in messages (defaults to path).
  explicit ElfFile(const std::string& path, std::string display = {});
  ~ElfFile();
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  uint16_t type() const { return type_; }  // ET_EXEC, ET_DYN, ET_REL
  std::optional<std::string> build_id() const;  // hex, from the notes
  std::vector<LoadSegment> load_segments() const;

  const std::vector<ElfSection>& sections() const { return sections_; }
  const ElfSection* section(const std::string& name) const;
  Bytes section_data(size_t index) const;  // empty for SHT_NOBITS
  std::vector<ElfRela> relocations(const ElfSection& rela_section) const;

  // .symtab (index-aligned with the file, entry 0 included), read when
  // first asked for: the file's own or, for a stripped file, that of its
  // separate debug file (separate_debug.h); empty if neither has one.
  const std::vector<ElfSymbol>& symbols() const;
  bool has_symtab() const { return !symbols().empty(); }
  // The file the symbols came from: path(), its debug file, or "".
  const std::string& symbols_file() const;
  std::vector<ElfSymbol> dynamic_symbols() const;

  // Bytes at a link-time virtual address, as stored in the file.
  Bytes read_vaddr(uint64_t vaddr, size_t size) const;

 private:
  std::vector<ElfSymbol> read_symbols(const ElfSection& table) const;
  // Version index -> name, from .gnu.version_d and .gnu.version_r.
  std::map<uint16_t, std::string> version_names() const;

  std::string path_;
  std::string name_;
  int fd_ = -1;
  Elf* elf_ = nullptr;
  uint16_t type_ = 0;
  std::vector<ElfSection> sections_;
  void load_symbols() const;

  mutable std::once_flag symbols_loaded_;
  mutable std::vector<ElfSymbol> symtab_;
  mutable std::string symbols_file_;
};

// Fast path for scanning many files: only the build-id note.
std::optional<std::string> read_build_id(const std::string& path);

// C++ demangling; returns "" if `name` is not a mangled C++ name.
std::string demangle(const std::string& name);

}  // namespace graft
