#include "builder/build_path.h"

#include <filesystem>
#include <system_error>

#include "common/command_output.h"

namespace graft {

namespace fs = std::filesystem;

std::string debian_build_path(const std::string& package, const std::string& version) {
  std::string upstream = version;
  if (auto colon = upstream.find(':'); colon != std::string::npos) upstream = upstream.substr(colon + 1);
  if (auto dash = upstream.rfind('-'); dash != std::string::npos) upstream = upstream.substr(0, dash);
  return "/build/reproducible-path/" + package + "-" + upstream;
}

namespace {

// The tmpfs hides whatever the host has at the parent, inside the
// namespace only; the bind mount makes the tree the build path.
const char* const kScript =
    "set -e; mount -t tmpfs -o mode=0755 graft-build \"$1\"; mkdir -p \"$2\"; "
    "mount --bind \"$3\" \"$2\"; cd \"$2\"; exec sh -c \"$4\"";

// In a PID namespace too, whose first process dies with unshare, which
// dies with graft (setpriv --pdeathsig): a graft killed mid-build leaves
// no compiler running.
std::vector<std::string> wrapped(const std::string& parent, const std::string& build_path,
                                 const std::string& tree, const std::string& command) {
  return {"setpriv", "--pdeathsig", "KILL", "--", "unshare", "--mount", "--propagation", "private",
          "--pid", "--fork", "--kill-child", "--mount-proc", "--", "sh", "-c", kScript, "sh",
          parent, build_path, tree, command};
}

}  // namespace

std::optional<std::string> build_path_unavailable(const std::string& build_path, const std::string& folder) {
  std::string parent = fs::path(build_path).parent_path().string();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) return "cannot create " + parent + ": " + ec.message();
  if (!command_output("/", wrapped(parent, build_path, folder, "true")))
    return "no private mount namespace here (`unshare --mount' failed: it needs root and util-linux)";
  return std::nullopt;
}

std::vector<std::string> command_at_build_path(const std::string& tree, const std::string& build_path,
                                               const std::string& command) {
  return wrapped(fs::path(build_path).parent_path().string(), build_path, tree, command);
}

void relocate_record(CompileRecord& record, const std::string& build_path, const std::string& tree) {
  // The build path is distinctive: wherever it starts a path (alone, or
  // inside an option such as -I/... or -ffile-prefix-map=/...=.), it is one.
  auto fix = [&](std::string& s) {
    for (size_t at = s.find(build_path); at != std::string::npos; at = s.find(build_path, at)) {
      size_t end = at + build_path.size();
      if (end < s.size() && s[end] != '/' && s[end] != '=') {
        at = end;
        continue;
      }
      s.replace(at, build_path.size(), tree);
      at += tree.size();
    }
  };
  fix(record.cwd);
  fix(record.object);
  fix(record.compared);
  fix(record.source);
  for (auto& a : record.argv) fix(a);
}

}  // namespace graft
