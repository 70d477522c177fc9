// Reads and writes another process's memory. Writes go through
// /proc/PID/mem, which (like a debugger's breakpoint) may write to pages the
// process itself cannot write, such as code.
#pragma once
#include <sys/types.h>

#include <cstring>

#include "common/hash.h"
#include "common/unique_resource.h"
#include "process/memory_reader.h"
#include "process/remote_address.h"

namespace graft {

class ProcessMemory : public MemoryReader {
 public:
  explicit ProcessMemory(pid_t pid);
  pid_t pid() const { return pid_; }
  ~ProcessMemory();
  ProcessMemory(const ProcessMemory&) = delete;
  ProcessMemory& operator=(const ProcessMemory&) = delete;

  Bytes read(RemoteAddress at, size_t size) const override;  // throws if unreadable
  bool try_read(RemoteAddress at, void* out, size_t size) const;
  void write(RemoteAddress at, std::span<const uint8_t> data) const;
  template <typename T>
  T read_value(RemoteAddress at) const {
    T v;
    Bytes b = read(at, sizeof(T));
    std::memcpy(&v, b.data(), sizeof(T));
    return v;
  }
  template <typename T>
  void write_value(RemoteAddress at, const T& v) const {
    write(at, {reinterpret_cast<const uint8_t*>(&v), sizeof(T)});
  }

 private:
  pid_t pid_;
  UniqueFd fd_;
};

}  // namespace graft
