#include "elf/section_diff.h"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <vector>

#include "elf/elf_file.h"

namespace graft {

namespace {

struct Difference {
  uint64_t bytes = 0;  // differing bytes (UINT64_MAX: the sizes differ, or one lacks it)
  std::string text;
};

std::map<std::string, const ElfSection*> loaded(const ElfFile& elf) {
  std::map<std::string, const ElfSection*> out;
  for (const auto& s : elf.sections())
    if ((s.flags & SHF_ALLOC) && s.type != SHT_NOBITS) out.emplace(s.name, &s);
  return out;
}

}  // namespace

std::string section_differences(const std::string& a, const std::string& b, size_t limit) {
  ElfFile ea(a), eb(b);
  auto sa = loaded(ea), sb = loaded(eb);
  std::vector<Difference> found;
  for (const auto& [name, s] : sa) {
    auto it = sb.find(name);
    if (it == sb.end()) {
      found.push_back({UINT64_MAX, fmt::format("{} (only in {})", name, a)});
      continue;
    }
    if (s->size != it->second->size) {
      found.push_back({UINT64_MAX,
                       fmt::format("{} ({:#x} bytes in one, {:#x} in the other)", name, s->size, it->second->size)});
      continue;
    }
    Bytes x = ea.section_data(s->index), y = eb.section_data(it->second->index);
    uint64_t n = 0;
    for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) n += x[i] != y[i];
    if (n) found.push_back({n, fmt::format("{} ({} byte{} differ{})", name, n, n == 1 ? "" : "s", n == 1 ? "s" : "")});
  }
  for (const auto& [name, s] : sb)
    if (!sa.count(name)) found.push_back({UINT64_MAX, fmt::format("{} (only in {})", name, b)});
  std::stable_sort(found.begin(), found.end(),
                   [](const Difference& x, const Difference& y) { return x.bytes > y.bytes; });
  std::string out;
  for (size_t i = 0; i < found.size() && i < limit; ++i) out += (i ? ", " : "") + found[i].text;
  if (found.size() > limit) out += fmt::format(" and {} more", found.size() - limit);
  return out;
}

}  // namespace graft
