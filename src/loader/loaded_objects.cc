#include "loader/loaded_objects.h"

#include <elf.h>

#include "common/error.h"
#include "elf/elf_file.h"
#include "elf/elf_headers.h"

namespace graft {

namespace {
bool is_file_mapping(const Mapping& m) {
  return m.inode != 0 && !m.path.empty() && m.path[0] == '/' &&
         m.path.rfind("/memfd:", 0) != 0;
}
}  // namespace

std::string BuildIdCache::get(const Mapping& m, pid_t pid) {
  auto key = std::make_pair(m.device, m.inode);
  {
    std::lock_guard lock(mutex_);
    if (auto it = ids_.find(key); it != ids_.end()) return it->second;
  }
  // Read unlocked: two threads may both read a file, never wait for each other.
  auto id = read_build_id(m.map_file(pid)).value_or("");
  std::lock_guard lock(mutex_);
  return ids_[key] = id;
}

void BuildIdCache::clear() {
  std::lock_guard lock(mutex_);
  ids_.clear();
}

bool maps_build_id(pid_t pid, const std::vector<Mapping>& maps, const std::string& build_id,
                   BuildIdCache& cache) {
  for (const auto& m : maps)
    if (is_file_mapping(m) && m.offset == 0 && cache.get(m, pid) == build_id) return true;
  return false;
}

std::vector<LoadedObject> loaded_objects(pid_t pid, const std::vector<Mapping>& maps,
                                         BuildIdCache& cache) {
  std::vector<LoadedObject> out;
  std::map<std::pair<std::string, uint64_t>, size_t> index;
  for (const auto& m : maps) {
    if (!is_file_mapping(m)) continue;
    auto key = std::make_pair(m.device, m.inode);
    auto it = index.find(key);
    if (it == index.end()) {
      // The first mapping of an object maps its ELF header (offset 0).
      if (m.offset != 0) continue;
      LoadedObject o;
      o.path = m.path;
      o.file = m.map_file(pid);
      o.build_id = cache.get(m, pid);
      o.start = m.start;
      it = index.emplace(key, out.size()).first;
      out.push_back(std::move(o));
    }
    LoadedObject& o = out[it->second];
    o.mappings.push_back(m);
    o.end = std::max(o.end, m.end);
  }
  for (auto& o : out) {
    if (o.build_id.empty()) continue;
    // The program headers alone (not an ElfFile: see elf/elf_headers.h).
    auto elf = read_elf_headers(o.file);
    if (!elf || elf->machine != EM_X86_64) {
      o.build_id.clear();  // unreadable: never matched
      continue;
    }
    uint64_t first_vaddr = UINT64_MAX, last_vaddr = 0;
    for (const auto& seg : elf->load_segments) {
      first_vaddr = std::min(first_vaddr, seg.vaddr & ~uint64_t(0xfff));
      last_vaddr = std::max(last_vaddr, seg.vaddr + seg.memsz);
    }
    if (first_vaddr == UINT64_MAX) continue;
    o.bias = elf->type == ET_EXEC ? 0 : o.start - first_vaddr;
    o.end = std::max(o.end, o.bias + last_vaddr);
  }
  return out;
}

}  // namespace graft
