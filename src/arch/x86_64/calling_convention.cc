#include "arch/x86_64/calling_convention.h"

#include <fmt/format.h>

namespace graft::arch {

namespace {

constexpr RegisterSet kRax = 1u << 0, kRdx = 1u << 2, kXmm0 = 1u << 16, kXmm1 = 1u << 17;

bool long_double(const ValueType& v) { return v.kind == ValueType::Kind::Float && v.size == 16 && v.name == "long double"; }

std::string describe(const ValueType& v) { return v.name.empty() ? fmt::format("{}-byte value", v.size) : v.name; }

}  // namespace

std::variant<CallShape, std::string> call_shape(const FunctionSignature& s) {
  if (s.variadic) return std::string("it takes a variable number of arguments");
  CallShape shape;
  int integer = 0, sse = 0;
  uint64_t stack = 0;
  const ValueType& r = s.returns;
  switch (r.kind) {
    case ValueType::Kind::Void:
      break;
    case ValueType::Kind::Integer:
      if (r.size > 16) return fmt::format("it returns a {}", describe(r));
      shape.return_registers = r.size > 8 ? kRax | kRdx : kRax;
      break;
    case ValueType::Kind::Float:
      if (long_double(r)) break;  // in st(0), which no caller keeps anything in
      if (r.size > 8) return fmt::format("it returns a {}", describe(r));
      shape.return_registers = kXmm0;
      break;
    case ValueType::Kind::Aggregate:
      // Up to 16 bytes come back in any of rax, rdx, xmm0, xmm1 (by the
      // classes of its fields); larger ones in memory whose address the
      // caller passes in rdi and gets back in rax.
      if (r.size > 16) {
        shape.return_registers = kRax;
        ++integer;
      } else {
        shape.return_registers = kRax | kRdx | kXmm0 | kXmm1;
      }
      break;
    case ValueType::Kind::Other:
      return fmt::format("graft cannot tell how it returns a {}", describe(r));
  }
  for (size_t i = 0; i < s.parameters.size(); ++i) {
    const ValueType& p = s.parameters[i];
    if (p.kind == ValueType::Kind::Integer && p.size <= 8) {
      if (integer < 6) ++integer;
      else stack += 8;
    } else if (p.kind == ValueType::Kind::Integer && p.size == 16) {
      if (integer <= 4) integer += 2;
      else stack = (stack + 15) / 16 * 16 + 16;
    } else if (p.kind == ValueType::Kind::Float && p.size <= 8) {
      if (sse < 8) ++sse;
      else stack += 8;
    } else if (long_double(p)) {
      stack = (stack + 15) / 16 * 16 + 16;
    } else {
      return fmt::format("graft cannot tell how its parameter {} (a {}) is passed", i + 1, describe(p));
    }
  }
  shape.stack_argument_bytes = stack;
  return shape;
}

}  // namespace graft::arch
