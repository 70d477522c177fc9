// The ELF objects (executable, shared libraries) mapped in a process, each
// identified by its GNU build-id and located by its load bias.
#pragma once
#include <sys/types.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "process/maps.h"

namespace graft {

struct LoadedObject {
  std::string path;      // as /proc/PID/maps names it
  std::string file;      // a path that opens it (/proc/PID/map_files/...)
  std::string build_id;  // hex, "" if none
  uint64_t bias = 0;     // runtime address = bias + link-time address
  uint64_t start = 0, end = 0;  // span of its mappings
  std::vector<Mapping> mappings;
};

// Build-ids by (device, inode), so that scanning many processes reads each
// file once. Safe to share between threads (processes synced at once).
class BuildIdCache {
 public:
  std::string get(const Mapping& m, pid_t pid);
  void clear();

 private:
  std::mutex mutex_;
  std::map<std::pair<std::string, uint64_t>, std::string> ids_;
};

std::vector<LoadedObject> loaded_objects(pid_t pid, const std::vector<Mapping>& maps,
                                         BuildIdCache& cache);
// Cheap test used by --all: does the process map a file with this build-id?
bool maps_build_id(pid_t pid, const std::vector<Mapping>& maps, const std::string& build_id,
                   BuildIdCache& cache);

}  // namespace graft
