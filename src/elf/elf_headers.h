// The ELF header, the load segments and the build-id of a file, read with a
// few small reads. Mapping the whole file (libelf's ELF_C_READ_MMAP) and
// unmapping it costs far more (page faults, a TLB shootdown on every CPU at
// the unmap), and `--all' does this for every object of every process.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "elf/elf_file.h"  // LoadSegment

namespace graft {

struct ElfHeaders {
  uint16_t type = 0;     // ET_EXEC, ET_DYN...
  uint16_t machine = 0;  // EM_X86_64...
  std::vector<LoadSegment> load_segments;
  std::optional<std::string> build_id;  // hex, from a PT_NOTE segment
};

// nullopt if the file cannot be read or is not a 64-bit little-endian ELF
// file with sane program headers (the caller may then ask libelf).
std::optional<ElfHeaders> read_elf_headers(const std::string& path);

}  // namespace graft
