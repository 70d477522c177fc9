// A range of addresses (in graft or in the target: the caller says which)
// and page arithmetic.
#pragma once
#include <cstdint>

namespace graft {

struct AddressRange {
  uint64_t start = 0, size = 0;
  bool contains(uint64_t a) const { return a >= start && a - start < size; }
};

constexpr uint64_t kPageSize = 4096;
inline uint64_t page_round_up(uint64_t n) { return (n + kPageSize - 1) & ~(kPageSize - 1); }

}  // namespace graft
