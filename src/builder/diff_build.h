// graft build --from-diff: a patch from a source tree and a fix to it, the
// way kpatch-build does it for the kernel. The tree is built as it is and
// with the fix, through a compiler wrapper; each recompiled unit's objects
// are compared function by function (src/differ); the changed functions
// and what they need become a patch against the running target's symbols.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "patch/patch.h"

namespace graft {

struct DiffBuildOptions {
  std::string diff;    // FIX.patch
  std::string source;  // the original tree
  std::string target;  // the running executable or library, built from it
  std::string build_command = "make";
  std::string clean_command;  // run in the copy first; "" for a pristine or git tree
  std::string work_dir;  // kept when given
  // A Debian source package instead of `source`, `build_command` and
  // `clean_command`: PKG[=VERSION] or an unpacked source's folder
  // (builder/debian_source.h).
  std::string debian_source;
  std::string name;      // patch name
  std::function<void(const std::string&)> progress = [](const std::string&) {};
};

struct FunctionReport {
  std::string symbol;     // in the target (new functions: in the patch)
  std::string demangled;  // "" for C
  std::string file;       // source file of a static
  std::string unit;       // translation unit it comes from
  std::string reason;     // "changed directly", "inlined change", "changed", "new function"
  std::string detail;     // e.g. the inlined function whose change it carries
};

struct DiffBuildResult {
  Patch patch;
  std::vector<FunctionReport> functions;
  std::vector<std::string> new_variables;
  std::vector<std::string> notes;
  std::string work_dir;  // "" when removed
};

DiffBuildResult build_patch_from_diff(const DiffBuildOptions& options);

}  // namespace graft
