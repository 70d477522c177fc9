#include "process/thread_syscall.h"

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file.h"

namespace graft {

std::optional<BlockedSyscall> blocked_syscall(pid_t pid, pid_t tid) {
  std::string text;
  try {
    text = read_text_file(fmt::format("/proc/{}/task/{}/syscall", pid, tid));
  } catch (const Error&) {
    return std::nullopt;
  }
  std::istringstream in(text);
  std::vector<std::string> f;
  for (std::string w; in >> w;) f.push_back(w);
  if (f.empty() || f[0] == "running") return std::nullopt;
  // "NR a0 a1 a2 a3 a4 a5 SP PC", or "-1 SP PC" outside a system call.
  if (f.size() != 9 && f.size() != 3) return std::nullopt;
  BlockedSyscall b;
  char* end = nullptr;
  b.nr = std::strtol(f[0].c_str(), &end, 10);
  if (*end) return std::nullopt;
  b.sp = std::strtoull(f[f.size() - 2].c_str(), &end, 16);
  if (*end) return std::nullopt;
  b.pc = std::strtoull(f.back().c_str(), &end, 16);
  if (*end) return std::nullopt;
  return b;
}

}  // namespace graft
