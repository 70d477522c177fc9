// Fuzzes parse_maps(), the reader of /proc/PID/maps (src/process/maps.cc).
// The kernel writes that file, but the paths in it are chosen by the target
// (file names, memfd names). Accepted mappings must be non-empty, sorted and
// disjoint: placement and the record checks rely on it.
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "fuzz_check.h"
#include "process/maps.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using graft::fuzz::require;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto maps = graft::parse_maps(text, 1);
    require(!maps.empty(), "no mapping accepted");
    for (size_t i = 0; i < maps.size(); ++i) {
      require(maps[i].start < maps[i].end, "empty or inverted mapping");
      require(i == 0 || maps[i - 1].end <= maps[i].start, "mappings overlap or are unsorted");
    }
  } catch (const graft::Error&) {
  }
  return 0;
}
