// Fuzzes parse_record(), the reader of graft's record inside a target
// (src/loader/patch_record.cc): the target's memory may be hostile.
//
// Input: the text of a /proc/PID/maps, a NUL byte, then the bytes at the
// start of the region (record header and JSON), tried as the record of each
// "graft:" mapping at offset 0 (else of the first mapping). A record the parser
// accepts must only name places graft may write: every site at the entry of
// a function lying in a file's executable mapping, every replacement and
// callback inside the region's code, the saved jump a jump to it. The same
// bytes are also read as the runtime's record ("graft:rt"), whose functions
// graft calls: they must lie in the runtime's code.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "arch/x86_64/jump.h"
#include "common/error.h"
#include "fuzz_check.h"
#include "loader/patch_record.h"
#include "process/maps.h"

namespace {

using graft::fuzz::require;

bool inside(const std::vector<graft::Mapping>& maps, uint64_t start, uint64_t size, bool graft) {
  for (const auto& m : maps) {
    bool is_graft = m.path.rfind("/memfd:graft:", 0) == 0;
    bool file = !m.path.empty() && m.path[0] == '/' && m.path.rfind("/memfd:", 0) != 0;
    if (m.exec && (graft ? is_graft : file) && start >= m.start && start < m.end &&
        size <= m.end - start)
      return true;
  }
  return false;
}

void check_accepted(const graft::PatchRecord& r, const graft::Mapping& region,
                    const std::vector<graft::Mapping>& maps) {
  require(r.region_start == region.start, "record placed elsewhere than its region");
  require(r.image_base >= region.start && r.code_size <= r.region_size &&
              r.image_base - region.start <= r.region_size - r.code_size,
          "code outside the region");
  require(inside(maps, r.image_base, r.code_size, true), "code not in the region's executable pages");
  for (const auto& f : r.functions) {
    require(f.site >= f.address && f.site - f.address <= graft::arch::kMaxSiteOffset,
            "site not at the function's entry");
    require(f.size >= graft::arch::kRedirectSize &&
                f.site - f.address + graft::arch::kRedirectSize <= f.size,
            "jump would not fit in the function");
    require(inside(maps, f.address, f.size, false), "function not in a file's code");
    require(r.code().contains(f.replacement), "replacement outside the patch code");
    require(f.original.size() == graft::arch::kRedirectSize, "saved original of the wrong size");
    require(f.redirect == graft::arch::redirect_bytes(f.site, f.replacement),
            "saved jump does not lead to the replacement");
  }
  for (const auto& c : r.callbacks)
    require(r.code().contains(c.address), "callback outside the patch code");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  if (!nul) return 0;
  std::string_view maps_text(reinterpret_cast<const char*>(data), nul - data);
  std::span<const uint8_t> record(nul + 1, data + size - (nul + 1));
  std::vector<graft::Mapping> maps;
  try {
    maps = graft::parse_maps(maps_text, 1);
  } catch (const graft::Error&) {
    return 0;
  }
  // Each "graft:" region at offset 0 in turn (the first mapping if none):
  // the record bytes may belong to any of them.
  bool any = false;
  for (const auto& region : maps) {
    if (region.path.rfind("/memfd:graft:", 0) != 0 || region.offset != 0) continue;
    any = true;
    try {
      check_accepted(graft::parse_record(record, region, maps), region, maps);
    } catch (const graft::Error&) {
    }
    try {
      auto rt = graft::parse_runtime_record(record, region, maps);
      require(inside(maps, rt.image_base, rt.code_size, true), "runtime code not in its region");
      for (const auto& [name, address] : rt.exports)
        require(address >= rt.image_base && address - rt.image_base < rt.code_size,
                "runtime function outside the runtime's code");
    } catch (const graft::Error&) {
    }
  }
  if (!any) {
    try {
      check_accepted(graft::parse_record(record, maps.front(), maps), maps.front(), maps);
    } catch (const graft::Error&) {
    }
  }
  return 0;
}
