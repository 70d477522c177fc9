// A process's memory for unit tests: byte strings at addresses.
#pragma once
#include <map>

#include "common/error.h"
#include "process/memory_reader.h"

namespace graft {

class FakeMemory : public MemoryReader {
 public:
  void put(uint64_t at, Bytes bytes) { regions_[at] = std::move(bytes); }
  Bytes read(RemoteAddress at, size_t size) const override {
    for (const auto& [start, bytes] : regions_)
      if (at.value >= start && at.value + size <= start + bytes.size())
        return Bytes(bytes.begin() + (at.value - start), bytes.begin() + (at.value - start) + size);
    fail("fake process: cannot read {} bytes at {:#x}", size, at.value);
  }

 private:
  std::map<uint64_t, Bytes> regions_;
};

}  // namespace graft
