// Why a changed function changed, in the words kpatch-build uses: its own
// source lines changed ("changed directly"), or those of a function that
// was inlined into it ("inlined change"), or neither: its code depends on
// something else that changed (a constant, a callee's interface).
//
// A function's source span is taken from the DWARF of the patched build:
// from its declaration line to the next function declared in the same file.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "arch/x86_64/immediates.h"
#include "builder/unified_diff.h"
#include "differ/dwarf_facts.h"

namespace graft {

struct ChangeReason {
  std::string reason;  // "changed directly", "inlined change", "changed"
  std::string detail;
};

ChangeReason reason_for(const std::string& symbol, const DwarfFacts& patched,
                        const std::vector<DiffFile>& diff);

// A function that changed only because lines were added or removed above
// it: `__LINE__' in an assertion or logging macro is an immediate operand,
// and moves with its line. True when the function's own lines (and those
// inlined into it) did not change, and every immediate that differs is the
// number of a line of its source span (or of a function inlined into it)
// that the diff moved from exactly the old value to the new one. Returns
// the moves ("412 -> 415, 430 -> 433"); nullopt for a real change.
std::optional<std::string> moved_line_numbers(const std::string& symbol,
                                              const std::vector<arch::ImmediateChange>& changes,
                                              const DwarfFacts& patched,
                                              const std::vector<DiffFile>& diff);

}  // namespace graft
