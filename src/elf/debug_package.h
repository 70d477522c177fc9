// What to install when a stripped target's debug file is missing: Debian
// ships debug symbols as PKG-dbgsym (the debian-debug archive) or, for a
// few packages, PKG-dbg in the main archive (libc6-dbg).
#pragma once
#include <string>

namespace graft {

// A sentence for the operator: "install its debug symbols: apt-get install
// libc6-dbg", or how to provide the debug file when no package owns `path`.
std::string debug_package_advice(const std::string& path);

// The installed binary package that owns `path` ("libc6"), under the names
// dpkg may know it by on a merged-/usr system; "" if none.
std::string owning_package(const std::string& path);

}  // namespace graft
