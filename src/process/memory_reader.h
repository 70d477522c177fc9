// Reading the target's memory, as planning needs it: ProcessMemory reads a
// live process; unit tests give the planner a fake one.
#pragma once
#include <cstddef>

#include "common/hash.h"
#include "process/remote_address.h"

namespace graft {

class MemoryReader {
 public:
  virtual ~MemoryReader() = default;
  // The bytes at `at'; throws graft::Error naming the process if unreadable.
  virtual Bytes read(RemoteAddress at, size_t size) const = 0;
};

}  // namespace graft
