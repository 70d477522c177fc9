#include "kernel/diff_objects.h"

#include <fmt/format.h>

namespace graft::kernel {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
bool starts_with(const std::string& s, const std::string& head) { return s.rfind(head, 0) == 0; }

}  // namespace

DiffObjects objects_for_diff(const std::vector<DiffFile>& files) {
  DiffObjects out;
  for (const DiffFile& f : files) {
    const std::string& p = f.path;
    if (p.empty() || p == "/dev/null") continue;
    if (starts_with(p, "Documentation/") || starts_with(p, "tools/") || starts_with(p, "scripts/") ||
        starts_with(p, "debian/") || starts_with(p, "samples/") || starts_with(p, "LICENSES/") ||
        p == "MAINTAINERS" || p.find('/') == std::string::npos) {
      out.ignored.push_back(p);
      continue;
    }
    if (ends_with(p, ".c")) {
      out.objects.push_back({p, p.substr(0, p.size() - 2) + ".o"});
    } else if (ends_with(p, ".h")) {
      out.headers.push_back(p);
    } else if (ends_with(p, ".S")) {
      out.refusals.push_back(fmt::format("{}: assembly; graft compares functions of compiled C only", p));
    } else if (ends_with(p, "Makefile") || ends_with(p, "Kbuild") || p.find("Kconfig") != std::string::npos) {
      out.refusals.push_back(fmt::format(
          "{}: changes the build or the configuration; a live patch replaces functions of the "
          "running kernel's configuration",
          p));
    } else {
      out.refusals.push_back(fmt::format("{}: not a C source file; graft cannot tell what it compiles to", p));
    }
  }
  return out;
}

}  // namespace graft::kernel
