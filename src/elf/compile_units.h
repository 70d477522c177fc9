// The compilation units of an object, from its DWARF: which address ranges
// each covers and the compiler options recorded in DW_AT_producer (GCC's
// -grecord-gcc-switches, on by default with -g). Used to tell where GCC's
// inter-procedural register allocation may have been applied.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace graft {

struct CompileUnit {
  std::string name;
  std::string producer;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [low, high)
  // -fipa-ra is on: -O2 or higher (or -Os) without -fno-ipa-ra. True when
  // the producer does not say.
  bool ipa_ra = true;
  bool lto = false;  // callers and callees of any unit may see each other
};

class CompileUnits {
 public:
  // No DWARF, or unreadable DWARF: an empty set (every question unknown).
  explicit CompileUnits(const std::string& path);
  // nullptr if no unit covers `address`.
  const CompileUnit* at(uint64_t address) const;
  bool empty() const { return units_.empty(); }

 private:
  std::vector<CompileUnit> units_;
};

// What GCC options in a DW_AT_producer string say about -fipa-ra.
bool producer_enables_ipa_ra(const std::string& producer);

}  // namespace graft
