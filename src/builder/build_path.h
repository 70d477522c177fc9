// Building a tree as if it were at another path: Debian's buildds build every
// package at /build/reproducible-path/SOURCE-UPSTREAM, and a package that
// records its build directory (nginx keeps its configure line, compiler
// flags included) is reproduced bit for bit only there. The build runs in a
// private mount namespace (util-linux unshare) where a tmpfs over the path's
// parent holds a bind mount of the tree; on the host only that parent
// folder is created, empty. It runs in its own PID namespace as well, tied
// to graft's life: killing graft ends the whole build.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "builder/compile_log.h"

namespace graft {

// Debian's build path for a source package: the folder dpkg-source unpacks
// PACKAGE VERSION to (epoch and revision dropped), under its buildds' root.
std::string debian_build_path(const std::string& package, const std::string& version);

// Why a build cannot see a folder at `build_path` here (no privilege for a
// mount namespace, no unshare); nullopt when it can. Tries it with `folder`.
std::optional<std::string> build_path_unavailable(const std::string& build_path, const std::string& folder);

// The command line that runs `command` (sh -c) with `tree` seen at
// `build_path` and as the working directory.
std::vector<std::string> command_at_build_path(const std::string& tree, const std::string& build_path,
                                               const std::string& command);

// Paths a build at `build_path` recorded, made paths of `tree`.
void relocate_record(CompileRecord& record, const std::string& build_path, const std::string& tree);

}  // namespace graft
