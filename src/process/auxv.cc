#include "process/auxv.h"

#include <elf.h>

#include <cstring>

#include "common/error.h"
#include "common/file.h"

namespace graft {

std::optional<uint64_t> auxv_value(std::span<const uint8_t> auxv, uint64_t type) {
  for (size_t at = 0; at + 16 <= auxv.size(); at += 16) {
    uint64_t entry[2];
    std::memcpy(entry, auxv.data() + at, sizeof entry);
    if (entry[0] == AT_NULL) break;
    if (entry[0] == type) return entry[1];
  }
  return std::nullopt;
}

std::optional<uint64_t> auxv_value(pid_t pid, uint64_t type) {
  try {
    return auxv_value(read_file(fmt::format("/proc/{}/auxv", pid), 64 * 1024), type);
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace graft
