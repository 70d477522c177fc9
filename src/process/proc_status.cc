#include "process/proc_status.h"

#include <fmt/format.h>

#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/file.h"

namespace graft {

long tracer_pid(pid_t pid, pid_t tid) {
  try {
    std::string status = read_text_file(fmt::format("/proc/{}/task/{}/status", pid, tid));
    auto at = status.find("TracerPid:");
    return at == std::string::npos ? 0 : std::strtol(status.c_str() + at + 10, nullptr, 10);
  } catch (const Error&) {
    return 0;
  }
}

std::optional<uint64_t> thread_cpu_ns(pid_t pid, pid_t tid) {
  try {
    std::string stat = read_text_file(fmt::format("/proc/{}/task/{}/schedstat", pid, tid));
    char* end = nullptr;
    unsigned long long ns = std::strtoull(stat.c_str(), &end, 10);
    if (end == stat.c_str()) return std::nullopt;
    return ns;
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace graft
