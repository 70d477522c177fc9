#include "builder/debug_package.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace graft {

namespace {

// Runs argv with stdin and stderr on /dev/null; its stdout, or nullopt if it
// could not run or failed.
std::optional<std::string> output_of(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  std::string out;
  if (rc == 0) {
    std::array<char, 4096> buf;
    ssize_t n;
    while ((n = read(fds[0], buf.data(), buf.size())) > 0 || (n < 0 && errno == EINTR))
      if (n > 0) out.append(buf.data(), static_cast<size_t>(n));
  }
  close(fds[0]);
  if (rc != 0) return std::nullopt;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return std::nullopt;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

// The binary package that installed `path` ("libc6"), tried under the names
// dpkg may know it by on a merged-/usr system.
std::string owning_package(const std::string& path) {
  std::vector<std::string> names = {path};
  if (char* real = realpath(path.c_str(), nullptr)) {
    names.emplace_back(real);
    std::free(real);
  }
  for (size_t i = 0, n = names.size(); i < n; ++i)
    if (names[i].rfind("/usr/", 0) == 0) names.push_back(names[i].substr(4));
  for (const auto& name : names) {
    auto out = output_of({"dpkg-query", "-S", name});
    if (!out) continue;
    // "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6"
    auto colon = out->find(':');
    if (colon == std::string::npos || colon == 0) continue;
    std::string package = out->substr(0, colon);
    if (package.find_first_of(" ,") != std::string::npos) continue;  // a diversion
    return package;
  }
  return {};
}

bool archive_has(const std::string& package) {
  auto out = output_of({"apt-cache", "show", "--no-all-versions", package});
  return out && out->find("Package: " + package) != std::string::npos;
}

}  // namespace

std::string debug_package_advice(const std::string& path) {
  std::string package = owning_package(path);
  if (package.empty())
    return "rebuild it with -g, or put its debug file under /usr/lib/debug/.build-id (or name "
           "the folder with GRAFT_DEBUG_ROOT)";
  for (const char* suffix : {"-dbg", "-dbgsym"})
    if (archive_has(package + suffix))
      return fmt::format("install its debug symbols: apt-get install {}{}", package, suffix);
  return fmt::format("install its debug symbols: {}-dbgsym, from Debian's debian-debug archive "
                     "(add that archive to apt's sources first)",
                     package);
}

}  // namespace graft
