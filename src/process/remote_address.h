// An address in another process. It cannot be dereferenced here: reading and
// writing go through ProcessMemory, so "our pointer" and "the target's
// pointer" cannot be mixed up.
#pragma once
#include <cstdint>

#include <fmt/format.h>

namespace graft {

struct RemoteAddress {
  uint64_t value = 0;
  constexpr RemoteAddress operator+(uint64_t off) const { return {value + off}; }
  constexpr auto operator<=>(const RemoteAddress&) const = default;
};

}  // namespace graft

template <>
struct fmt::formatter<graft::RemoteAddress> : fmt::formatter<std::string_view> {
  auto format(graft::RemoteAddress a, format_context& ctx) const {
    return fmt::format_to(ctx.out(), "{:#x}", a.value);
  }
};
