#include "loader/footprint.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "common/error.h"
#include "loader/patch_record.h"
#include "process/maps.h"
#include "process/memory.h"
#include "process/proc_status.h"

namespace graft {

std::optional<Footprint> read_footprint(pid_t pid) {
  try {
    auto maps = read_maps(pid);
    Footprint f;
    for (const auto& m : maps)
      if (m.path.find(kRegionNamePrefix) != std::string::npos)
        f.mappings.push_back(fmt::format("{:x}-{:x} {}{}{} {}", m.start, m.end, m.read ? 'r' : '-',
                                         m.write ? 'w' : '-', m.exec ? 'x' : '-', m.path));
    ProcessMemory memory(pid);
    auto scan = read_records(pid, maps, memory);
    for (const auto& r : scan.records)
      f.records.push_back(fmt::format("patch {} in state {}", r.label(), state_name(r.state)));
    f.problems = scan.problems;
    return f;
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::string describe_change(const Footprint& before, const Footprint& after) {
  std::vector<std::string> parts;
  auto added = [](const std::vector<std::string>& was, const std::vector<std::string>& now) {
    std::vector<std::string> out;
    for (const auto& x : now)
      if (std::find(was.begin(), was.end(), x) == was.end()) out.push_back(x);
    return out;
  };
  for (const auto& r : added(before.records, after.records)) parts.push_back("a record of " + r);
  for (const auto& r : added(after.records, before.records))
    parts.push_back("no longer a record of " + r);
  auto new_maps = added(before.mappings, after.mappings);
  if (!new_maps.empty()) parts.push_back(fmt::format("{} new graft mapping(s)", new_maps.size()));
  auto gone_maps = added(after.mappings, before.mappings);
  if (!gone_maps.empty()) parts.push_back(fmt::format("{} graft mapping(s) gone", gone_maps.size()));
  for (const auto& p : added(before.problems, after.problems)) parts.push_back(p);
  if (parts.empty()) return "changes graft cannot name";
  return fmt::format("{}", fmt::join(parts, "; "));
}

void verify_unchanged(pid_t pid, const std::optional<Footprint>& before, std::optional<bool>& unchanged,
                      std::string& left) {
  auto after = read_footprint(pid);
  if (!before || !after) return;
  unchanged = *before == *after;
  if (!*unchanged) left = describe_change(*before, *after);
}

void name_an_exit(pid_t pid, const char* operation, std::string& error, ErrorCode& code) {
  if (names_process_state(code) || !process_exiting(pid)) return;
  if (error.find("exited") == std::string::npos)
    error = fmt::format("process {} exited during the {} ({})", pid, operation, error);
  code = ErrorCode::no_such_process;
}

}  // namespace graft
