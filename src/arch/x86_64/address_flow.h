// What a function does with an address it computes with `lea' from a
// relocated field (the address of a variable): whether it only reads
// through it. The builder carries a changed variable that no code writes
// (differ/unit_diff.h), and must not guess.
//
// A forward data flow over the function's branches: which registers may
// hold the address (or arithmetic on it) before each instruction; a
// register overwritten by anything else no longer does, and a call clobbers
// the caller-saved ones. The function may write through the address if an
// instruction writes memory addressed by such a register; the address
// escapes if such a register is stored to memory, is in an argument
// register at a call or a jump out of the function, or in rax at a return.
// A load through it yields the variable's contents, not its address.
// Conservative: a register that may hold it on some path counts.
#pragma once
#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "arch/x86_64/instruction.h"

namespace graft::arch {

// `function`: the function decoded (decode_function); `lea_at`: the
// offset of the lea instruction; `relocated`: offsets of the function's
// relocated fields (a branch whose target field is relocated leaves the
// function). nullopt if the function only reads through the address;
// otherwise what it does ("writes through it at +0x1c").
std::optional<std::string> address_use(const DecodedFunction& function, uint64_t lea_at,
                                       const std::set<uint64_t>& relocated);

}  // namespace graft::arch
