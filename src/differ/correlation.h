// Which symbol of the original object is which symbol of the patched one.
//
// GCC numbers what it invents: clones (`f.isra.0`, `f.constprop.1`,
// `f.part.0`), static locals (`counter.1`), switch tables (`CSWTCH.12`).
// The numbers follow the order of the translation unit, so a change
// anywhere can shift them. Names are therefore compared with every purely
// numeric component replaced by `#`; static locals are further told apart
// by the function that uses them. A pairing is made only when it is
// unambiguous: exact names first, then a unique stable name on both sides.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace graft {

// `f.isra.0` -> `f.isra.#`, `counter.12` -> `counter.#`, `_Z1fv` unchanged.
std::string stable_name(const std::string& name);
// True when the name carries a number GCC invented.
bool has_compiler_number(const std::string& name);
// `f.cold`, `f.cold.1`: a piece of f the compiler moved away from it.
bool is_cold_piece(const std::string& name);
// `f.cold` -> `f`.
std::string cold_piece_parent(const std::string& name);

struct CorrelationSymbol {
  std::string name;
  bool function = false;
  // For a numbered static local: the stable name of the function using it.
  std::string owner;
};

// Returns patched index -> original index.
std::map<size_t, size_t> correlate(const std::vector<CorrelationSymbol>& original,
                                   const std::vector<CorrelationSymbol>& patched);

}  // namespace graft
