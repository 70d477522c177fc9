#include "elf/debug_package.h"

#include <fmt/format.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/command_output.h"

namespace graft {

std::string owning_package(const std::string& path) {
  std::vector<std::string> names = {path};
  if (char* real = realpath(path.c_str(), nullptr)) {
    names.emplace_back(real);
    std::free(real);
  }
  for (size_t i = 0, n = names.size(); i < n; ++i)
    if (names[i].rfind("/usr/", 0) == 0) names.push_back(names[i].substr(4));
  for (const auto& name : names) {
    auto out = command_output("/", {"dpkg-query", "-S", name});
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

namespace {

bool archive_has(const std::string& package) {
  auto out = command_output("/", {"apt-cache", "show", "--no-all-versions", package});
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
