// Runs the system C/C++ compiler on a patch source file.
#pragma once
#include <string>
#include <vector>

namespace graft {

// Compiles `source` into the relocatable object `object` with the flags a
// patch needs, then `extra_flags` (which may override them). Throws with the
// compiler's exit status on failure; its diagnostics go to stderr.
void compile_patch_source(const std::string& source, const std::string& object,
                          const std::vector<std::string>& extra_flags);

// The directory holding graft/patch.h.
std::string patch_header_dir();

// Runs argv[0] with argv; returns its exit status (-1 if it could not start).
int run_command(const std::vector<std::string>& argv);

}  // namespace graft
