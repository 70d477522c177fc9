#include "process/process_list.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/unique_resource.h"

namespace graft {

std::vector<pid_t> all_processes() {
  std::vector<pid_t> out;
  UniqueDir d(opendir("/proc"));
  if (!d) return out;
  while (dirent* e = readdir(d.get())) {
    char* end;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end == 0 && pid > 0 && pid != getpid()) out.push_back(static_cast<pid_t>(pid));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace graft
