// Compares the original and the patched object of one translation unit: pairs
// their symbols (correlation.h), finds the functions whose code changed,
// and what cannot be patched by replacing functions.
//
// A function is changed when its bytes (relocated fields masked) or its
// relocations differ. A relocation is compared by what it points to, named
// the same way on both sides: a function or variable by its original name
// (a patched symbol through its correlation), a string literal by its text,
// a local constant (a `static const` table, a switch table) by its stable
// name and contents, so that a changed constant changes every user.
#pragma once
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "arch/x86_64/immediates.h"
#include "differ/object_view.h"

namespace graft {

class UnitDiff {
 public:
  // `original` is null for a translation unit the diff adds.
  UnitDiff(const ObjectView* original, const ObjectView& patched);

  const ObjectView* original() const { return original_; }
  const ObjectView& patched() const { return patched_; }
  std::optional<size_t> original_of(size_t patched_piece) const;
  // Correlated functions (not cold pieces) whose code differs.
  const std::vector<size_t>& changed_functions() const { return changed_; }
  bool changed(size_t patched_piece) const { return changed_set_.count(patched_piece) > 0; }
  // The immediates that differ in a changed function and its cold parts,
  // when nothing else does (the same relocations, to the same places);
  // nullopt otherwise.
  std::optional<std::vector<arch::ImmediateChange>> immediate_only_change(size_t patched_piece) const;
  // Takes a changed function out of the changed ones: its original code
  // stays, and references to it from the patch lead to the target's copy.
  void leave_out(size_t patched_piece);
  // What cannot be done by replacing functions; each a full sentence.
  const std::vector<std::string>& refusals() const { return refusals_; }
  // Changed static data that no code ever writes (a lookup table, a list
  // of names): the patch carries the new copy, and every function of the
  // unit that reads it is replaced to read that copy, changed or not.
  bool carries(size_t patched_piece) const { return carried_data_.count(patched_piece) > 0; }
  // Why a function is replaced although its code is the same ("reads
  // `names', which the fix changes"); nullopt for a function that changed.
  std::optional<std::string> replaced_as_reader(size_t patched_piece) const;
  // What the build should say of the carried data, one sentence each.
  const std::vector<std::string>& notes() const { return notes_; }

  // The normalised form compared for a piece (exposed for tests).
  std::string normalized(const ObjectView& view, size_t piece, bool patched_side) const;
  // Its two parts: the bytes with relocated fields zeroed, and where each
  // relocation points.
  static Bytes masked_bytes(const ObjectView& view, size_t piece);
  std::string relocation_places(const ObjectView& view, size_t piece, bool patched_side) const;

 private:
  std::string describe(const ObjectView& view, const Place& place, bool patched_side) const;
  std::string piece_name(const ObjectView& view, size_t piece, bool patched_side) const;
  std::vector<size_t> cold_pieces(const ObjectView& view, size_t function) const;
  void compare_functions();
  void compare_data();
  // Why code of `view` may write data piece `piece` ("" if it never does):
  // every reference to it must be a load, not a store, nor an address that
  // code could write through (lea) or that other data holds.
  std::string writes_to(const ObjectView& view, size_t piece) const;
  // Carries changed never-written data piece `piece` (patched side) and
  // replaces its readers; `why` it is never written, for the note.
  void carry_data(size_t piece, const Piece& original, const std::string& why);

  const ObjectView* original_;
  const ObjectView& patched_;
  std::map<size_t, size_t> to_original_;
  std::vector<size_t> changed_;
  std::set<size_t> changed_set_;
  std::vector<std::string> refusals_;
  std::set<size_t> carried_data_;
  std::map<size_t, std::string> readers_;  // replaced for carried data: piece -> the data's name
  std::vector<std::string> notes_;
};

// `counter.1` and the like: a static variable GCC numbered.
bool is_numbered_static(const Piece& p);

}  // namespace graft
