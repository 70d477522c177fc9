// Why a changed function changed, in the words kpatch-build uses: its own
// source lines changed ("changed directly"), or those of a function that
// was inlined into it ("inlined change"), or neither: its code depends on
// something else that changed (a constant, a callee's interface).
//
// A function's source span is taken from the DWARF of the patched build:
// from its declaration line to the next function declared in the same file.
#pragma once
#include <string>
#include <vector>

#include "differ/unified_diff.h"
#include "differ/dwarf_facts.h"

namespace graft {

struct ChangeReason {
  std::string reason;  // "changed directly", "inlined change", "changed"
  std::string detail;
};

ChangeReason reason_for(const std::string& symbol, const DwarfFacts& patched,
                        const std::vector<DiffFile>& diff);

}  // namespace graft
