#include "arch/x86_64/address_flow.h"

#include <fmt/format.h>

#include <map>
#include <vector>

#include "arch/x86_64/register_set.h"

namespace graft::arch {

namespace {

constexpr RegisterSet kRax = 1u << 0;
// Integer argument registers: rdi rsi rdx rcx r8 r9.
constexpr RegisterSet kArguments = 1u << 7 | 1u << 6 | 1u << 2 | 1u << 1 | 1u << 8 | 1u << 9;

bool field_relocated(const Instruction& ins, const std::set<uint64_t>& relocated) {
  auto it = relocated.lower_bound(ins.address);
  return it != relocated.end() && *it < ins.address + ins.length;
}

bool is_call(const Instruction& ins) {
  return ins.flow == Instruction::Flow::Call || ins.flow == Instruction::Flow::IndirectCall;
}

}  // namespace

std::optional<std::string> address_use(const DecodedFunction& function, uint64_t lea_at,
                                       const std::set<uint64_t>& relocated) {
  if (function.undecodable) return fmt::format("graft cannot decode the function at +{:#x}", *function.undecodable);
  const std::vector<Instruction>& all = function.instructions;
  std::map<uint64_t, size_t> index;
  for (size_t i = 0; i < all.size(); ++i) index[all[i].address] = i;
  auto lea = index.find(lea_at);
  if (lea == index.end() || !all[lea->second].takes_address)
    return fmt::format("no lea starts at +{:#x}", lea_at);
  // A branch inside the function: where it goes; nullopt for one that
  // leaves it (relocated, or out of its bytes).
  auto internal_target = [&](const Instruction& ins) -> std::optional<size_t> {
    if (field_relocated(ins, relocated) || !ins.target) return std::nullopt;
    auto it = index.find(*ins.target);
    if (it == index.end()) return std::nullopt;
    return it->second;
  };
  auto leaves = [&](const Instruction& ins) {
    return ins.flow == Instruction::Flow::IndirectJump ||
           ((ins.flow == Instruction::Flow::Jump || ins.flow == Instruction::Flow::ConditionalJump) &&
            !internal_target(ins));
  };

  // Registers that may hold the address before each instruction.
  std::vector<RegisterSet> in(all.size(), 0);
  std::vector<bool> reached(all.size(), false);
  std::vector<size_t> work = {lea->second};
  reached[lea->second] = true;
  while (!work.empty()) {
    size_t i = work.back();
    work.pop_back();
    const Instruction& ins = all[i];
    RegisterSet held = in[i];
    bool from_held = i == lea->second || (ins.value_reads & held) || (ins.takes_address && (ins.address_reads & held));
    RegisterSet out = from_held ? held | ins.writes | ins.overwrites : held & ~ins.overwrites;
    if (is_call(ins)) out &= ~caller_saved_registers();
    std::vector<size_t> next;
    switch (ins.flow) {
      case Instruction::Flow::Next: case Instruction::Flow::Call: case Instruction::Flow::IndirectCall:
        next.push_back(i + 1);
        break;
      case Instruction::Flow::ConditionalJump:
        next.push_back(i + 1);
        if (auto t = internal_target(ins)) next.push_back(*t);
        break;
      case Instruction::Flow::Jump:
        if (auto t = internal_target(ins)) next.push_back(*t);
        break;
      default:
        break;
    }
    for (size_t n : next) {
      if (n >= all.size()) continue;
      if (reached[n] && (in[n] | out) == in[n]) continue;
      reached[n] = true;
      in[n] |= out;
      work.push_back(n);
    }
  }
  for (size_t i = 0; i < all.size(); ++i) {
    if (!reached[i]) continue;
    const Instruction& ins = all[i];
    RegisterSet held = i == lea->second ? 0 : in[i];
    uint64_t at = ins.address;
    if (ins.memory_write && (ins.address_reads & held)) return fmt::format("may write through it at +{:#x}", at);
    if ((ins.memory_write || ins.stack_write) && !is_call(ins) && (ins.value_reads & held))
      return fmt::format("stores it in memory at +{:#x}", at);
    if ((is_call(ins) || leaves(ins)) && (held & kArguments))
      return fmt::format("may pass it to another function at +{:#x}", at);
    if (ins.flow == Instruction::Flow::Return && (held & kRax)) return fmt::format("may return it at +{:#x}", at);
  }
  return std::nullopt;
}

}  // namespace graft::arch
