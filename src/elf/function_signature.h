// The declared signature of a function of an object, from its DWARF: what
// the caller passes and what the function returns, reduced to the facts a
// calling convention needs (kind and size of each value). Used to build an
// entry thunk that must find the stack-passed arguments and leave the return
// registers alone (linker/register_contract).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace graft {

struct ValueType {
  // Integer: integers, characters, booleans, enumerations, pointers and
  // references. Float: base types with a floating-point encoding (`name'
  // tells `long double' from `__float128'). Aggregate: structures, unions,
  // classes, arrays. Other: anything else (complex, vectors, member
  // function pointers, unreadable types).
  enum class Kind { Void, Integer, Float, Aggregate, Other };
  Kind kind = Kind::Void;
  uint64_t size = 0;
  std::string name;  // for messages
};

struct FunctionSignature {
  ValueType returns;
  std::vector<ValueType> parameters;  // in order, `this' first for methods
  bool variadic = false;
};

// The signature of the function whose code starts at `address` (link-time),
// from the DWARF of `path`; nullopt if no DWARF describes it. A function
// GCC folded into an identical one (-fipa-icf: its code is a jump to the
// other) has no DWARF at its address: it is then found by `name' (linkage
// name, or name), if every definition of that name agrees.
std::optional<FunctionSignature> function_signature(const std::string& path, uint64_t address,
                                                    const std::string& name = "");

}  // namespace graft
