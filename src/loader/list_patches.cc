// graft list, and the processes the other commands' --all finds: what graft
// reads of a process without changing it.
#include "common/error.h"
#include "common/file.h"
#include "loader/loaded_objects.h"
#include "loader/operations.h"
#include "process/proc_status.h"
#include "process/process_list.h"

namespace graft {

ProcessPatches list_patches(pid_t pid) {
  ProcessPatches out;
  out.pid = pid;
  try {
    out.command = read_text_file(fmt::format("/proc/{}/comm", pid));
    if (!out.command.empty() && out.command.back() == '\n') out.command.pop_back();
  } catch (const Error&) {
  }
  auto maps = read_maps(pid);
  ProcessMemory memory(pid);
  auto scan = read_records(pid, maps, memory);
  out.patches = std::move(scan.records);
  out.runtime = std::move(scan.runtime);
  out.problems = std::move(scan.problems);
  for (const auto& r : out.patches)
    if (r.in_transition()) out.transitions[r.id] = read_transition_status(memory, r);
  for (const auto& r : out.patches) {
    size_t n = 0;
    for (const auto& f : r.functions) {
      Bytes now(f.redirect.size());
      if (!f.restores && memory.try_read({f.site}, now.data(), now.size()) && now == f.redirect) ++n;
    }
    out.redirected.push_back(n);
  }
  out.traced = tracer_pid(pid, pid) > 0;
  return out;
}

std::vector<pid_t> processes_mapping(const std::string& build_id) {
  std::vector<pid_t> out;
  BuildIdCache cache;
  for (pid_t pid : all_processes()) {
    try {
      if (maps_build_id(pid, read_maps(pid), build_id, cache)) out.push_back(pid);
    } catch (const Error&) {
      // Exited, or a kernel thread.
    }
  }
  return out;
}

std::vector<pid_t> processes_with_patches() {
  std::vector<pid_t> out;
  const std::string prefix = std::string("/memfd:") + kRegionNamePrefix;
  for (pid_t pid : all_processes()) {
    try {
      for (const auto& m : read_maps(pid))
        if (m.path.rfind(prefix, 0) == 0) {
          out.push_back(pid);
          break;
        }
    } catch (const Error&) {
    }
  }
  return out;
}

}  // namespace graft
