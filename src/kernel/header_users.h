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
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kernel/diff_objects.h"

namespace graft::kernel {

class KernelTree;

// A header change reaches every object that includes the header; past
// these the patch is no longer a targeted fix, and the transition would
// have to catch every caller of what changed.
inline constexpr size_t kMaxHeaderObjects = 16;
inline constexpr size_t kMaxHeaderFunctions = 40;
// Past this many C files including the header (any configuration), the
// configured ones are not even counted.
inline constexpr size_t kMaxHeaderIncluders = 200;

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

// Steps 1 and 2 for each header of `plan`: adds the objects of this
// configuration it reaches to plan.objects (make's logs in `work_dir`);
// returns object -> header for step 3. Throws, with the count, when a
// header reaches too many.
std::map<std::string, std::string> add_header_users(const KernelTree& tree, DiffObjects& plan, const std::string& work_dir,
                                                    const std::function<void(const std::string&)>& progress);

}  // namespace graft::kernel
