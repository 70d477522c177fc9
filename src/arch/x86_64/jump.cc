#include "arch/x86_64/jump.h"

#include <cstring>
#include <limits>

namespace graft::arch {

uint64_t patch_site_offset(std::span<const uint8_t> entry) {
  static const uint8_t endbr64[4] = {0xf3, 0x0f, 0x1e, 0xfa};
  if (entry.size() >= 4 && std::memcmp(entry.data(), endbr64, 4) == 0) return 4;
  return 0;
}

std::optional<Bytes> redirect_bytes(uint64_t site, uint64_t to) {
  int64_t rel = static_cast<int64_t>(to - (site + kRedirectSize));
  if (rel < std::numeric_limits<int32_t>::min() || rel > std::numeric_limits<int32_t>::max())
    return std::nullopt;
  int32_t r = static_cast<int32_t>(rel);
  Bytes out{0xe9, 0, 0, 0, 0};
  std::memcpy(out.data() + 1, &r, 4);
  return out;
}

}  // namespace graft::arch
