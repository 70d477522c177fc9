// Building a tree as if it were at another path: Debian's buildds build every
// package at /build/reproducible-path/SOURCE-UPSTREAM, and a package that
// records its build directory (nginx keeps its configure line, compiler
// flags included) is reproduced bit for bit only there. The build runs in a
// private mount namespace (util-linux unshare) where a tmpfs over the path's
// parent holds a bind mount of the tree; on the host only that parent
// folder is created, empty.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "builder/compile_log.h"

namespace graft {

// Debian's build path for a source package: the folder dpkg-source unpacks
// PACKAGE VERSION to (epoch and revision dropped), under its buildds' root.
std::string debian_build_path(const std::string& package, const std::string& version);

// The command line that runs `command` (sh -c) with `tree` seen at
// `build_path` and as the working directory; nullopt with the reason in
// `why` when no mount namespace can be made here (no privilege, no unshare).
std::optional<std::vector<std::string>> command_at_build_path(const std::string& tree,
                                                              const std::string& build_path,
                                                              const std::string& command, std::string* why);

// Paths a build at `build_path` recorded, made paths of `tree`.
void relocate_record(CompileRecord& record, const std::string& build_path, const std::string& tree);

}  // namespace graft
