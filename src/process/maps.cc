#include "process/maps.h"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "common/error.h"
#include "common/file.h"

namespace graft {

std::string Mapping::map_file(pid_t pid) const {
  return fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, start, end);
}

std::vector<Mapping> read_maps(pid_t pid) {
  std::string text;
  try {
    text = read_text_file(fmt::format("/proc/{}/maps", pid));
  } catch (const Error& e) {
    if (access(fmt::format("/proc/{}", pid).c_str(), F_OK) != 0)
      fail(ErrorCode::no_such_process, "process {} does not exist", pid);
    fail(ErrorCode::permission_denied, "process {}: cannot read its mappings: {}", pid, e.what());
  }
  return parse_maps(text, pid);
}

std::vector<Mapping> parse_maps(std::string_view text, pid_t pid) {
  std::vector<Mapping> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    Mapping m;
    char perms[5] = {};
    char dev[16] = {};
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %15s %" SCNu64 " %n",
                    &m.start, &m.end, perms, &m.offset, dev, &m.inode, &path_at) < 6 ||
        m.end <= m.start || std::strlen(perms) != 4)
      fail("process {}: malformed line in /proc/{}/maps: {}", pid, pid, line);
    // Placement and the record checks rely on sorted, disjoint mappings.
    if (!out.empty() && m.start < out.back().end)
      fail("process {}: /proc/{}/maps is not sorted: {}", pid, pid, line);
    m.read = perms[0] == 'r';
    m.write = perms[1] == 'w';
    m.exec = perms[2] == 'x';
    m.shared = perms[3] == 's';
    m.device = dev;
    if (path_at > 0 && static_cast<size_t>(path_at) <= line.size()) m.path = line.substr(path_at);
    out.push_back(std::move(m));
  }
  if (out.empty()) fail("process {} has no memory mappings (a zombie or kernel thread?)", pid);
  return out;
}

}  // namespace graft
