// How the System V x86-64 calling convention passes a function's arguments
// and returns its value, for the entry thunk (entry_thunk.h): how many bytes
// of arguments the caller left on the stack, and which registers hold the
// return value.
//
// Integers and pointers take rdi, rsi, rdx, rcx, r8, r9, then 8-byte stack
// slots; float and double take xmm0-7, then 8-byte slots; __int128 takes two
// integer registers or a 16-aligned 16-byte slot; long double always takes a
// 16-aligned 16-byte slot. Aggregates are classified field by field by the
// ABI, which graft does not do: a signature with one is refused, as are
// complex and vector types and variadic functions (the caller decides how
// much it pushes).
#pragma once
#include <cstdint>
#include <string>
#include <variant>

#include "arch/x86_64/instruction.h"
#include "elf/function_signature.h"

namespace graft::arch {

struct CallShape {
  uint64_t stack_argument_bytes = 0;  // from the return address slot + 8
  RegisterSet return_registers = 0;   // may hold the return value
};

// The shape of a call to a function of signature `s`, or why graft cannot
// tell it (a sentence naming the parameter).
std::variant<CallShape, std::string> call_shape(const FunctionSignature& s);

}  // namespace graft::arch
