// /proc/PID/maps, parsed and validated.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace graft {

struct Mapping {
  uint64_t start = 0, end = 0;
  bool read = false, write = false, exec = false, shared = false;
  uint64_t offset = 0;
  uint64_t inode = 0;
  std::string device;  // "fd:01"
  std::string path;    // "" for anonymous memory
  bool contains(uint64_t a) const { return a >= start && a < end; }
  // /proc/PID/map_files/START-END: the mapped file itself, even if deleted.
  std::string map_file(pid_t pid) const;
};

std::vector<Mapping> read_maps(pid_t pid);
// The text of /proc/PID/maps, parsed and checked; `pid` names the process in
// errors. Pure: the fuzz target fuzz/maps_fuzzer.cc feeds it arbitrary text.
std::vector<Mapping> parse_maps(std::string_view text, pid_t pid);

}  // namespace graft
