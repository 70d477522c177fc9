// Changed lines the preprocessor drops: a fix inside `#ifdef FEATURE` of a
// feature the build leaves out changes no code, and the operator must hear
// why rather than "changes no function's code".
#pragma once
#include <string>
#include <vector>

#include "builder/compile_log.h"
#include "builder/unified_diff.h"

namespace graft {

struct InactiveLines {
  std::string file;         // the source, relative as in the diff
  std::vector<int> lines;   // changed lines the build does not compile
  std::string conditional;  // "`#ifdef ENABLE_PROXY' (proxy.c:120)", or ""
};

// Runs the unit's own compile command with -E instead of -c and returns the
// changed lines of `diff` (the unit's source, new version) that hold code
// but produce no preprocessed output. Empty when every changed line is
// compiled, or when the preprocessor cannot be run.
InactiveLines inactive_changed_lines(const CompileRecord& unit, const DiffFile& diff);

}  // namespace graft
