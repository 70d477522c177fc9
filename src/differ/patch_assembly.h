// Assembles the relocatable object a from-diff patch is linked from: the
// changed functions of the patched build, what they need that the running
// target does not have (new functions, new variables, string literals and
// other local constants, their unwind information), and undefined symbols
// for everything else, named as in the original build (with the source file
// of a static) so that the linker binds them to the target's own symbols.
#pragma once
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "linker/relocatable_object.h"
#include "differ/unit_diff.h"

namespace graft {

struct IncludedFunction {
  const UnitDiff* unit;
  size_t piece;  // in unit->patched()
  bool replaces; // false: a new function, called from the patch only
};

class PatchAssembler {
 public:
  // `units`: every translation unit the patched build recompiled; a new
  // global one of them defines is taken from there.
  explicit PatchAssembler(const std::vector<const UnitDiff*>& units);

  // Includes a changed function and replaces its original with it.
  void replace(const UnitDiff& unit, size_t piece);
  RelocatableObject finish();

  const std::vector<IncludedFunction>& functions() const { return functions_; }
  // Symbols the original build defines that the patch refers to in the
  // target: the target must have every one of them.
  const std::map<std::string, std::string>& expected_in_target() const { return expected_; }
  // New variables the patch allocates (they start at their initial value).
  const std::vector<std::string>& new_variables() const { return new_variables_; }

 private:
  using Key = std::pair<const UnitDiff*, size_t>;
  size_t include_section(const UnitDiff& u, size_t section);
  uint32_t map_symbol(const UnitDiff& u, const ElfRela& r, int64_t* addend);
  uint32_t external(const std::string& name, const std::string& file);
  bool copied(const UnitDiff& u, size_t piece) const;
  void drain();
  void add_unwind_info();

  std::vector<const UnitDiff*> units_;
  RelocatableObject out_;
  std::map<Key, size_t> sections_;            // (unit, section) -> section of out_
  std::map<Key, uint32_t> symbols_;           // (unit, symbol) -> symbol of out_
  std::map<std::pair<std::string, std::string>, uint32_t> externals_;
  std::map<std::string, Key> new_globals_;    // name -> (unit, piece)
  std::map<std::string, uint32_t> defined_globals_;  // name -> symbol of out_
  std::deque<Key> pending_;                   // included sections whose relocations are not copied yet
  std::vector<IncludedFunction> functions_;
  std::vector<std::string> new_variables_;
  std::map<std::string, std::string> expected_;  // name -> unit
};

}  // namespace graft
