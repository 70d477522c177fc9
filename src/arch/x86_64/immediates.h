// Code that differs only in immediate operands: `mov $412, %edx` against
// `mov $415, %edx`, instruction by instruction, every other byte equal.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace graft::arch {

struct ImmediateChange {
  uint64_t offset;  // of the instruction, from the start of the code
  int64_t before, after;
};

// The immediates that differ between two pieces of code of the same length,
// or nullopt when anything else differs (an opcode, a register, a length,
// bytes that do not decode).
std::optional<std::vector<ImmediateChange>> immediate_changes(std::span<const uint8_t> before,
                                                              std::span<const uint8_t> after);

}  // namespace graft::arch
