// Is the running target the build of the original tree? Each function
// about to be replaced must have, in the target, the instructions it has in
// the original build's object.
//
// Not byte for byte: the object was compiled with -ffunction-sections, the
// target (usually) without, and the assembler then relaxes a tail call
// `jmp f` to a function of the same section to a 2-byte `jmp rel8`, which
// shifts everything after it. So both are decoded in step: an instruction
// without relocation must be identical; one with a relocation must be the
// same bytes outside the relocated field, except a direct branch, which
// must go to the same symbol and offset whatever its encoding. A branch
// inside the function (no relocation) may be short in one and near in the
// other too: it must reach the same instruction, counted from the start,
// and the alignment no-ops that follow differ in length: they are skipped.
#pragma once
#include <functional>
#include <map>
#include <string>

#include "linker/target_symbols.h"
#include "differ/object_view.h"

namespace graft {

// The code of one function as the target holds it, at its link-time
// address, and the target's function symbol at an address (with the
// offset into it; "" if none).
struct RunningFunction {
  uint64_t address = 0;
  Bytes bytes;
  // The bytes run up to the next symbol (no symbol sizes, as in the
  // kernel's System.map): alignment padding may follow the code.
  bool padded = false;
};
// "*" when the table cannot name what is there (only exported symbols): a
// branch there is not held against the function. Several names at one
// address (GCC's `f.localalias', an alias) are one function: `wanted' is
// the name the original build branches to, returned if it is among them.
using SymbolAt = std::function<std::string(uint64_t address, int64_t* offset, const std::string& wanted)>;

// "" when `running` has the instructions of `piece` of `original`; else
// what differs. Shared by processes (TargetCode) and the kernel's image.
// `resolved`, if given, learns where relocations of the original point in
// the target: it is called with each relocation (offsets relative to the
// function) and the value S + A the target's code holds for it, wherever
// the instruction has the same length on both sides.
using ResolvedReference = std::function<void(const ElfRela& relocation, uint64_t value)>;
std::string code_mismatch(const ObjectView& original, size_t piece, const RunningFunction& running,
                          const SymbolAt& symbol_at, const ResolvedReference& resolved = {});

class TargetCode {
 public:
  TargetCode(const ElfFile& target, const TargetSymbols& symbols);
  // "" when the function matches; otherwise what differs, e.g.
  // "function `f' differs at +0x12" or "has no function `f' (a.c)".
  std::string mismatch(const ObjectView& original, size_t piece) const;

 private:
  std::string symbol_at(uint64_t address, int64_t* offset, const std::string& wanted) const;

  const ElfFile& target_;
  const TargetSymbols& symbols_;
  struct FunctionAt {
    std::vector<std::string> names;
    uint64_t size = 0;
  };
  std::map<uint64_t, FunctionAt> functions_;  // by address
};

}  // namespace graft
