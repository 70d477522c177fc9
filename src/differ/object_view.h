// One compiled translation unit seen as the differ needs it: its functions
// and variables ("pieces", one per named symbol; aliases folded into one),
// and where each relocation points (a piece and an offset in it, an
// anonymous place in a section, or an undefined symbol).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "linker/relocatable_object.h"

namespace graft {

struct Piece {
  uint32_t symbol = 0;  // the canonical symbol (a global rather than its .localalias)
  std::string name;
  size_t section = 0;
  uint64_t offset = 0, size = 0;  // within the section
  bool function = false;
  bool local = false;
  bool constant = false;  // read-only data (or .data.rel.ro: read-only once relocated)
  bool tls = false;
  bool bss = false;
  std::string file;  // STT_FILE of a local symbol
};

// Where a relocation points.
struct Place {
  bool undefined = false;       // an undefined symbol: `symbol`
  uint32_t symbol = 0;
  std::optional<size_t> piece;  // else an anonymous place of `section`
  size_t section = 0;
  int64_t offset = 0;           // within the piece, or within the section
  int64_t probe = 0;            // section offset most likely referred to (see pc_relative_bias)
};

class ObjectView {
 public:
  ObjectView(RelocatableObject object, std::string source);

  const RelocatableObject& object() const { return object_; }
  const std::string& source() const { return source_; }
  const std::string& name() const { return object_.name; }
  const std::vector<Piece>& pieces() const { return pieces_; }
  std::optional<size_t> piece_of_symbol(uint32_t symbol) const;
  std::optional<size_t> find(const std::string& name, bool function) const;

  Place place_of(const ElfRela& r) const;
  // The relocations inside a piece, with offsets relative to its start.
  std::vector<ElfRela> relocations_in(const Piece& p) const;
  Bytes bytes(const Piece& p) const;  // zeros for .bss
  // Functions that refer to data piece `p` (indexes into pieces()).
  const std::vector<size_t>& users(size_t piece) const { return users_[piece]; }
  bool section_is_strings(size_t section) const;
  bool section_is_constant(size_t section) const;
  // The function `p' is only a jump to, when GCC's identical code folding
  // made it one (-fipa-icf: ngx_atoof is `jmp ngx_atoi'); "" if not.
  std::string folded_into(const Piece& p) const;

 private:
  RelocatableObject object_;
  std::string source_;
  std::vector<Piece> pieces_;
  std::vector<std::optional<size_t>> symbol_piece_;  // by symbol index
  std::vector<std::vector<size_t>> users_;
};

}  // namespace graft
