#include "ops/target_readiness.h"

#include <elf.h>

#include <algorithm>
#include <cstdint>

#include "common/error.h"
#include "elf/elf_file.h"
#include "process/maps.h"

namespace graft::ops {

std::string target_not_ready(pid_t pid, const Patch& patch, BuildIdCache& cache) {
  std::vector<Mapping> maps;
  try {
    maps = read_maps(pid);
  } catch (const Error& e) {
    return e.what();
  }
  const Mapping* first = nullptr;
  for (const auto& m : maps) {
    if (m.inode == 0 || m.offset != 0 || m.path.empty() || m.path[0] != '/') continue;
    try {
      if (cache.get(m, pid) == patch.target.build_id) {
        first = &m;
        break;
      }
    } catch (const std::exception&) {
    }
  }
  if (!first) return "the target is not mapped";
  uint64_t bias = 0;
  try {
    ElfFile elf(first->map_file(pid), first->path);
    uint64_t first_vaddr = UINT64_MAX;
    for (const auto& seg : elf.load_segments()) first_vaddr = std::min(first_vaddr, seg.vaddr & ~uint64_t(0xfff));
    if (first_vaddr == UINT64_MAX) return "the target has no loadable segment";
    bias = elf.type() == ET_EXEC ? 0 : first->start - first_vaddr;
  } catch (const Error& e) {
    return e.what();
  }
  for (const auto& f : patch.functions) {
    uint64_t at = bias + f.address;
    bool mapped = std::any_of(maps.begin(), maps.end(), [&](const Mapping& m) {
      return m.exec && m.contains(at) && m.inode == first->inode && m.device == first->device;
    });
    if (!mapped)
      return fmt::format("{} at {:#x} is not in an executable mapping of {} yet (the dynamic loader "
                         "is still mapping it)",
                         f.symbol, at, first->path);
  }
  return "";
}

}  // namespace graft::ops
