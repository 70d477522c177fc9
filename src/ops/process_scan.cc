#include "ops/process_scan.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "common/error.h"
#include "common/file.h"
#include "common/unique_resource.h"
#include "loader/operations.h"
#include "process/maps.h"

namespace graft::ops {

namespace {

// The maps text, or why not: EACCES/EPERM for a process the caller may not
// inspect, anything else for one that is gone (or a kernel thread).
std::optional<std::string> maps_text(pid_t pid, int& err) {
  std::string path = fmt::format("/proc/{}/maps", pid);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    err = errno;
    return std::nullopt;
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

bool is_file_mapping(const Mapping& m) {
  return m.inode != 0 && !m.path.empty() && m.path[0] == '/' && m.path.rfind("/memfd:", 0) != 0;
}

}  // namespace

std::optional<uint64_t> process_start_time(pid_t pid) {
  try {
    std::string stat = read_text_file(fmt::format("/proc/{}/stat", pid), 4096);
    // The command may hold spaces and parentheses: fields start after the last ')'.
    auto close = stat.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream in(stat.substr(close + 2));
    std::string field;
    for (int i = 3; i <= 22 && (in >> field); ++i)
      if (i == 22) return std::stoull(field);
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::optional<std::string> status_field(pid_t pid, const std::string& field) {
  try {
    std::istringstream in(read_text_file(fmt::format("/proc/{}/status", pid), 65536));
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(field + ":", 0) == 0) {
        auto v = line.substr(field.size() + 1);
        v.erase(0, v.find_first_not_of(" \t"));
        return v;
      }
  } catch (const Error&) {
  }
  return std::nullopt;
}

Inspection inspect_process(pid_t pid, const std::set<std::string>& build_ids, BuildIdCache& cache,
                           TargetProcess& out) {
  int err = 0;
  auto text = maps_text(pid, err);
  if (!text) return err == EACCES || err == EPERM ? Inspection::Denied : Inspection::Gone;
  out = TargetProcess{};
  out.pid = pid;
  std::vector<Mapping> maps;
  try {
    maps = parse_maps(*text, pid);
  } catch (const Error&) {
    return Inspection::Gone;
  }
  for (const auto& m : maps) {
    if (!is_file_mapping(m) || m.offset != 0) continue;
    std::string id;
    try {
      id = cache.get(m, pid);
    } catch (const std::exception&) {
      continue;
    }
    if (build_ids.count(id)) out.build_ids.insert(id);
  }
  if (out.build_ids.empty()) return Inspection::MapsNone;
  auto start = process_start_time(pid);
  if (!start) return Inspection::Gone;
  out.start_time = *start;
  try {
    out.command = read_text_file(fmt::format("/proc/{}/comm", pid), 4096);
    if (!out.command.empty() && out.command.back() == '\n') out.command.pop_back();
  } catch (const Error&) {
  }
  return Inspection::Maps;
}

ProcessScan scan_processes(const std::set<std::string>& build_ids, BuildIdCache& cache) {
  ProcessScan scan;
  for (pid_t pid : all_processes()) {
    TargetProcess p;
    switch (inspect_process(pid, build_ids, cache, p)) {
      case Inspection::Maps: scan.processes.push_back(std::move(p)); break;
      case Inspection::Denied: ++scan.uninspectable; break;
      case Inspection::MapsNone:
      case Inspection::Gone: break;
    }
  }
  return scan;
}

}  // namespace graft::ops
