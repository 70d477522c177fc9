#include "differ/target_match.h"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "arch/x86_64/instruction.h"
#include "arch/x86_64/relocation.h"
#include "common/error.h"

namespace graft {

TargetCode::TargetCode(const ElfFile& target, const TargetSymbols& symbols)
    : target_(target), symbols_(symbols) {
  for (const auto& s : symbols.all())
    if (s.type == STT_FUNC && s.defined() && !s.name.empty()) {
      FunctionAt& f = functions_[s.value];
      f.names.push_back(s.name);
      f.size = std::max(f.size, s.size);
    }
}

std::string TargetCode::symbol_at(uint64_t address, int64_t* offset, const std::string& wanted) const {
  std::string unknown = symbols_.exported_only() ? "*" : "";
  auto it = functions_.upper_bound(address);
  if (it == functions_.begin()) return unknown;
  --it;
  if (address - it->first >= std::max<uint64_t>(it->second.size, 1)) return unknown;
  *offset = static_cast<int64_t>(address - it->first);
  const auto& names = it->second.names;
  return std::find(names.begin(), names.end(), wanted) != names.end() ? wanted : names.front();
}

std::string TargetCode::mismatch(const ObjectView& original, size_t piece) const {
  const Piece& p = original.pieces()[piece];
  std::string file = p.local ? (p.file.empty() ? original.source() : p.file) : "";
  const ElfSymbol* fn = nullptr;
  try {
    fn = &symbols_.function(p.name, file);
  } catch (const Error& e) {
    return e.what();
  }
  RunningFunction running{fn->value, target_.read_vaddr(fn->value, fn->size)};
  std::string m = code_mismatch(original, piece, running,
                                [this](uint64_t address, int64_t* offset, const std::string& wanted) {
                                  return symbol_at(address, offset, wanted);
                                });
  return m;
}

namespace {

// S + A of a relocation, from the field the target's code holds at `at`.
std::optional<uint64_t> resolved_value(uint32_t type, const Bytes& code, size_t at, uint64_t address) {
  auto read = [&](size_t n) {
    uint64_t v = 0;
    std::memcpy(&v, code.data() + at, n);
    return v;
  };
  if (at + arch::object_field_width(type) > code.size()) return std::nullopt;
  switch (type) {
    case R_X86_64_PC32:
    case R_X86_64_PLT32:
      return address + at + uint64_t(int64_t(int32_t(uint32_t(read(4)))));
    case R_X86_64_32S:
      return uint64_t(int64_t(int32_t(uint32_t(read(4)))));
    case R_X86_64_32:
      return read(4);
    case R_X86_64_64:
      return read(8);
    default:
      return std::nullopt;
  }
}

}  // namespace

std::string code_mismatch(const ObjectView& original, size_t piece, const RunningFunction& fn,
                          const SymbolAt& symbol_at, const ResolvedReference& resolved) {
  const Piece& p = original.pieces()[piece];
  const Bytes& running = fn.bytes;
  Bytes built = original.bytes(p);
  auto relocs = original.relocations_in(p);
  size_t i = 0, j = 0;  // offsets in built and running
  // Instruction starts, by offset, on each side; and the branches inside the
  // function, each as (target in built, target in running, where).
  std::map<size_t, size_t> built_index, running_index;
  struct InnerBranch {
    uint64_t built_target, running_target;
    size_t at;
  };
  std::vector<InnerBranch> inner;
  while (i < built.size() && j < running.size()) {
    auto a = arch::decode_instruction({built.data() + i, built.size() - i}, i);
    auto b = arch::decode_instruction({running.data() + j, running.size() - j}, fn.address + j);
    if (!a || !b) return fmt::format("function `{}' cannot be decoded at +{:#x}", p.name, j);
    // Alignment before a label depends on the length of what precedes it.
    if (a->padding || b->padding) {
      if (a->padding) i += a->length;
      if (b->padding) j += b->length;
      continue;
    }
    built_index.emplace(i, built_index.size());
    running_index.emplace(j, running_index.size());
    const ElfRela* rel = nullptr;
    for (const auto& r : relocs)
      if (r.offset >= i && r.offset < i + a->length) {
        rel = &r;
        if (resolved && a->length == b->length)
          if (auto v = resolved_value(r.type, running, j + (r.offset - i), fn.address)) resolved(r, *v);
      }
    bool branch = a->flow == arch::Instruction::Flow::Jump || a->flow == arch::Instruction::Flow::ConditionalJump ||
                  a->flow == arch::Instruction::Flow::Call;
    if (rel && branch) {
      // Where the object's branch goes: the relocation's symbol, at the
      // end of the instruction + addend.
      Place pl = original.place_of(*rel);
      int64_t at = pl.offset + static_cast<int64_t>(i + a->length - rel->offset);
      std::string want = pl.undefined ? original.object().symbols[pl.symbol].name
                         : pl.piece   ? original.pieces()[*pl.piece].name
                                      : "";
      int64_t off = 0;
      std::string got = b->flow == a->flow && b->target ? symbol_at(*b->target, &off, want) : "";
      if (pl.undefined) {
        // Through the PLT, or resolved to the target's own definition.
        if (b->flow != a->flow || !b->target)
          return fmt::format("function `{}' differs at +{:#x} (a call or jump to `{}')", p.name, j, want);
      } else if (want.empty() || (got != "*" && (got != want || off != at))) {
        return fmt::format("function `{}' differs at +{:#x} (a branch to `{}'{:+} in the original build, "
                           "to `{}'{:+} in the target)",
                           p.name, j, want, at, got, off);
      }
    } else if (rel && a->length == b->length &&
               arch::is_gotpcrel_relaxation(rel->type, {built.data() + i, a->length},
                                            {running.data() + j, b->length}, rel->offset - i)) {
      // The linker bound a GOT load to a local symbol directly.
    } else if (!rel && branch && a->target && b->flow == a->flow && b->target &&
               a->operation == b->operation) {
      // A branch inside the function: the assembler encodes it short or
      // near depending on what it knows of the distance (`jmp rel8' or
      // `jmp rel32'); it must reach the same instruction.
      inner.push_back({*a->target, *b->target - fn.address, j});
    } else {
      if (a->length != b->length) return fmt::format("function `{}' differs at +{:#x}", p.name, j);
      for (size_t k = 0; k < a->length; ++k) {
        bool masked = false;
        for (const auto& r : relocs)
          if (i + k >= r.offset && i + k < r.offset + arch::object_field_width(r.type)) masked = true;
        if (!masked && built[i + k] != running[j + k])
          return fmt::format("function `{}' differs at +{:#x}", p.name, j + k);
      }
    }
    i += a->length;
    j += b->length;
  }
  for (const auto& b : inner) {
    auto x = built_index.find(b.built_target), y = running_index.find(b.running_target);
    if (x == built_index.end() || y == running_index.end() || x->second != y->second)
      return fmt::format("function `{}' differs at +{:#x} (a branch to another instruction)",
                         p.name, b.at);
  }
  // Trailing padding is not part of either.
  if (fn.padded && i >= built.size()) return "";
  if ((i < built.size()) != (j < running.size()) && running.size() != p.size &&
      (i < built.size() || j < running.size()))
    return fmt::format("function `{}' is {} bytes in the target, {} in the original build", p.name,
                       running.size(), p.size);
  return "";
}

}  // namespace graft
