// Separate debug files: distributions ship executables and libraries
// stripped, with their symbol tables and DWARF in a file of their own
// (Debian's -dbg and -dbgsym packages, under /usr/lib/debug). libdwfl finds
// that file the way gdb does, by build-id (DIR/.build-id/xx/rest.debug,
// checked against the file's note) or by .gnu_debuglink (beside the file, in
// its .debug/ folder or under DIR, checked by the link's CRC).
#pragma once
#include <optional>
#include <string>

namespace graft {

// The folders searched, in order: $GRAFT_DEBUG_ROOT (colon-separated) if
// set, else /usr/lib/debug and graft_debug_root().
std::string debug_roots();

// Where graft keeps debug files it made itself (a rebuilt binary identical
// to a stripped one): $GRAFT_DEBUG_CACHE, default /var/cache/graft/debug.
std::string graft_debug_root();

// The separate debug file of the ELF file at `path`, if one is installed and
// matches it; nullopt otherwise.
std::optional<std::string> find_separate_debug_file(const std::string& path);

// Where a debug file for `path` would be looked for, for messages:
// "/usr/lib/debug/.build-id/93/ac61...debug or .gnu_debuglink libc.so.6.debug".
std::string debug_file_places(const std::string& path);

}  // namespace graft
