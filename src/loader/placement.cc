#include "loader/placement.h"

#include <algorithm>

#include "arch/x86_64/jump.h"
#include "common/error.h"
#include "patch/patch.h"

namespace graft {

namespace {
constexpr uint64_t kMargin = uint64_t(16) << 20;  // slack below the rel32 limit
constexpr uint64_t kMinAddress = 0x10000;         // vm.mmap_min_addr
constexpr uint64_t kHeapRoom = uint64_t(256) << 20;  // leave the heap room to grow
constexpr uint64_t kUserTop = uint64_t(1) << 47;
}  // namespace

uint64_t choose_region_address(const std::vector<Mapping>& maps, const LoadedObject& target,
                               uint64_t size, pid_t pid) {
  const uint64_t reach = arch::kRel32Reach - kMargin;
  // Every byte of the region must reach every byte of the target object.
  uint64_t lowest = target.end > reach ? target.end - reach : kMinAddress;
  uint64_t highest = std::min(target.start + reach, kUserTop);  // region end
  lowest = std::max(lowest, kMinAddress);

  std::vector<Mapping> sorted = maps;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.start < b.start; });
  struct Gap {
    uint64_t start, end;
    bool after_heap;
  };
  std::vector<Gap> gaps;
  uint64_t prev_end = kMinAddress;
  bool prev_heap = false;
  for (const auto& m : sorted) {
    if (m.start > prev_end) gaps.push_back({prev_end, m.start, prev_heap});
    prev_end = std::max(prev_end, m.end);
    prev_heap = m.path == "[heap]";
  }
  if (kUserTop > prev_end) gaps.push_back({prev_end, kUserTop, prev_heap});

  // Preferred: the top of the nearest gap below the object, one guard page
  // below whatever follows it.
  uint64_t best = 0;
  for (const auto& g : gaps) {
    if (g.end > target.start) break;
    uint64_t end = std::min(g.end - kPageSize, highest);
    if (end < size) continue;
    uint64_t at = (end - size) & ~(kPageSize - 1);
    if (at >= g.start + kPageSize && at >= lowest) best = at;
  }
  if (best) return best;
  // Otherwise the bottom of the nearest gap above, clear of the heap.
  for (const auto& g : gaps) {
    if (g.start < target.end) continue;
    uint64_t at = page_round_up(g.start + (g.after_heap ? kHeapRoom : kPageSize));
    if (at < lowest) at = page_round_up(lowest);
    if (at + size + kPageSize <= g.end && at + size <= highest) return at;
  }
  fail("process {}: no free address range of {} bytes within 2 GiB of {}", pid, size, target.path);
}

}  // namespace graft
