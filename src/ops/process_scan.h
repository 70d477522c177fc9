// Which processes map which patch targets, found from /proc in one pass:
// each process's maps are read once and each mapped file's build-id once
// (BuildIdCache). A process whose maps the caller may not read is counted,
// so that a non-root `graft status` can say how much it could not see.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "loader/loaded_objects.h"

namespace graft::ops {

struct TargetProcess {
  pid_t pid = 0;
  uint64_t start_time = 0;  // clock ticks after boot: tells a reused pid apart
  std::string command;      // /proc/PID/comm, as the process set it
  std::set<std::string> build_ids;  // of the wanted ones, those it maps
};

struct ProcessScan {
  std::vector<TargetProcess> processes;  // those mapping a wanted build-id
  size_t uninspectable = 0;              // maps not readable by this caller
};

enum class Inspection { Maps, MapsNone, Denied, Gone };
// One process: whether it maps any of `build_ids` (filled in `out`).
Inspection inspect_process(pid_t pid, const std::set<std::string>& build_ids, BuildIdCache& cache,
                           TargetProcess& out);
ProcessScan scan_processes(const std::set<std::string>& build_ids, BuildIdCache& cache);

// Field 22 of /proc/PID/stat; nullopt if the process is gone.
std::optional<uint64_t> process_start_time(pid_t pid);
// What /proc/PID/status says, by field name ("Uid", "TracerPid", "Seccomp").
std::optional<std::string> status_field(pid_t pid, const std::string& field);

}  // namespace graft::ops
