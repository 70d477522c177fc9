// The auxiliary vector the kernel gave a process (/proc/PID/auxv).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>

namespace graft {

// The value of entry `type` (AT_HWCAP, ...); nullopt if the process has none
// or its vector cannot be read.
std::optional<uint64_t> auxv_value(pid_t pid, uint64_t type);
// The same, from the raw bytes of an auxiliary vector (pairs of 64-bit
// words, ended by AT_NULL).
std::optional<uint64_t> auxv_value(std::span<const uint8_t> auxv, uint64_t type);

}  // namespace graft
