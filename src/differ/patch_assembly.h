// Assembles the relocatable object a from-diff patch is linked from: the
// changed functions of the patched build, what they need that the running
// target does not have (new functions, new variables, string literals and
// other local constants, their unwind information), and undefined symbols
// for everything else, named as in the original build (with the source file
// of a static) so that the linker binds them to the target's own symbols.
#pragma once
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "linker/relocatable_object.h"
#include "differ/unit_diff.h"

namespace graft {

// A table of fixed-size entries whose first field refers to code: the
// kernel's exception, bug, jump label, static call, alternative, ftrace,
// ORC and thunk site tables. An entry follows the code it refers to into
// the patch.
struct EntryTable {
  std::string section;
  size_t entry_size = 0;
  // A section of entries without relocations that runs in step with this
  // one, and its entry size (ORC: .orc_unwind beside .orc_unwind_ip).
  std::string parallel;
  size_t parallel_entry_size = 0;
  // Each entry's own piece of another section, copied with it: the field
  // at `chunk_field` refers to its start, the byte at `chunk_length` gives
  // its length (alternatives: their replacement instructions).
  std::string chunk_section;
  size_t chunk_field = 0, chunk_length = 0;
};

// A section that refers into included code and was neither copied nor
// carried as an entry table.
struct ReferenceIntoPatch {
  const UnitDiff* unit;
  std::string section;
  std::string function;  // the included function it refers to
};

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
  // Carries the entries of `tables` that refer to included code (call
  // after every replace()); returns how many entries each table carried.
  std::map<std::string, size_t> carry_entries(const std::vector<EntryTable>& tables);
  // Sections of the patched units without named pieces (tables, notes)
  // that refer to included code but are not part of the patch.
  std::vector<ReferenceIntoPatch> references_into_patch() const;
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
  bool included_code(const UnitDiff& u, uint32_t symbol) const;

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
  std::set<std::string> carried_tables_;        // sections carry_entries() handled
};

}  // namespace graft
