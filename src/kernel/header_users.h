// The objects a changed header reaches. Compiling only the changed C files
// misses every object that includes a changed header (its inline functions,
// macros and constants are compiled into them), so for a header graft
//  1. finds the C files that include it, directly or through other headers,
//     by the #include lines of the tree (a superset: #ifdef'd includes
//     count);
//  2. keeps those Kbuild builds in this configuration (real-obj-y and
//     real-obj-m of their directory's Makefile, as Kbuild computes them);
//  3. after compiling them, keeps those whose Kbuild dependency list (the
//     deps_ of their .cmd file, from the compiler's -MMD) names the header.
// Too many objects refuse the build before anything is compiled.
#pragma once
#include <string>
#include <vector>

namespace graft::kernel {

struct HeaderIncluders {
  std::vector<std::string> sources;  // C files including the header, relative to the tree, sorted
  size_t headers_through = 0;        // other headers it reaches them through
};

// Step 1, over the source tree `tree` (headers of other architectures than
// x86, tools, scripts and documentation left out).
HeaderIncluders c_files_including(const std::string& tree, const std::string& header);

// Step 3: whether the .cmd file of the compiled `object` lists `header`
// among its dependencies. Throws naming the object if it has none.
bool object_depends_on(const std::string& tree, const std::string& object, const std::string& header);

}  // namespace graft::kernel
