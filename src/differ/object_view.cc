#include "differ/object_view.h"

#include <elf.h>

#include <algorithm>
#include <map>

#include "arch/x86_64/instruction.h"
#include "arch/x86_64/relocation.h"
#include "common/error.h"

namespace graft {

namespace {
bool alias_preferred(const ElfSymbol& a, const ElfSymbol& b) {
  // A global over a local, and over GCC's `f.localalias'.
  bool a_alias = a.name.find(".localalias") != std::string::npos;
  bool b_alias = b.name.find(".localalias") != std::string::npos;
  if (a_alias != b_alias) return b_alias;
  return (a.bind != STB_LOCAL) && (b.bind == STB_LOCAL);
}
}  // namespace

ObjectView::ObjectView(RelocatableObject object, std::string source)
    : object_(std::move(object)), source_(std::move(source)) {
  const auto& syms = object_.symbols;
  symbol_piece_.assign(syms.size(), std::nullopt);
  std::map<std::tuple<size_t, uint64_t, bool>, size_t> at;  // (section, offset, function) -> piece
  for (uint32_t i = 1; i < syms.size(); ++i) {
    const ElfSymbol& s = syms[i];
    bool function = s.type == STT_FUNC;
    if (!(function || s.type == STT_OBJECT || s.type == STT_TLS) || s.name.empty()) continue;
    if (s.shndx == SHN_UNDEF || s.shndx >= SHN_LORESERVE || s.shndx >= object_.sections.size()) continue;
    const ElfSection& sec = object_.sections[s.shndx];
    if (!(sec.flags & SHF_ALLOC)) continue;
    if (s.value > sec.size || s.size > sec.size - s.value)
      fail("{}: symbol `{}' lies outside its section {}", object_.name, s.name, sec.name);
    auto key = std::make_tuple(size_t(s.shndx), s.value, function);
    if (auto it = at.find(key); it != at.end()) {
      Piece& p = pieces_[it->second];
      if (alias_preferred(s, syms[p.symbol])) {
        p.symbol = i;
        p.name = s.name;
        p.local = s.bind == STB_LOCAL;
        p.file = s.file;
        p.size = std::max(p.size, s.size);
      }
      symbol_piece_[i] = it->second;
      continue;
    }
    Piece p;
    p.symbol = i;
    p.name = s.name;
    p.section = s.shndx;
    p.offset = s.value;
    p.size = s.size;
    p.function = function;
    p.local = s.bind == STB_LOCAL;
    p.tls = s.type == STT_TLS || (sec.flags & SHF_TLS);
    p.bss = sec.type == SHT_NOBITS;
    p.constant = !function && section_is_constant(s.shndx);
    p.file = s.file;
    at[key] = pieces_.size();
    symbol_piece_[i] = pieces_.size();
    pieces_.push_back(std::move(p));
  }
  users_.assign(pieces_.size(), {});
  for (size_t f = 0; f < pieces_.size(); ++f) {
    if (!pieces_[f].function) continue;
    for (const auto& r : relocations_in(pieces_[f])) {
      Place pl = place_of(r);
      if (pl.piece && !pieces_[*pl.piece].function) {
        auto& u = users_[*pl.piece];
        if (std::find(u.begin(), u.end(), f) == u.end()) u.push_back(f);
      }
    }
  }
}

bool ObjectView::section_is_strings(size_t section) const {
  const ElfSection& s = object_.sections[section];
  return (s.flags & SHF_MERGE) && (s.flags & SHF_STRINGS);
}

bool ObjectView::section_is_constant(size_t section) const {
  const ElfSection& s = object_.sections[section];
  if (s.flags & SHF_EXECINSTR) return false;
  return !(s.flags & SHF_WRITE) || s.name.rfind(".data.rel.ro", 0) == 0;
}

std::optional<size_t> ObjectView::piece_of_symbol(uint32_t symbol) const {
  if (symbol >= symbol_piece_.size()) return std::nullopt;
  return symbol_piece_[symbol];
}

std::optional<size_t> ObjectView::find(const std::string& name, bool function) const {
  for (size_t i = 0; i < pieces_.size(); ++i)
    if (pieces_[i].name == name && pieces_[i].function == function) return i;
  return std::nullopt;
}

Place ObjectView::place_of(const ElfRela& r) const {
  Place pl;
  pl.symbol = r.symbol;
  const ElfSymbol& s = object_.symbols.at(r.symbol);
  if (s.shndx == SHN_UNDEF) {
    pl.undefined = true;
    pl.offset = r.addend;
    return pl;
  }
  if (auto p = piece_of_symbol(r.symbol)) {
    pl.piece = p;
    pl.section = pieces_[*p].section;
    pl.offset = r.addend + static_cast<int64_t>(s.value - pieces_[*p].offset);
    return pl;
  }
  if (s.shndx >= SHN_LORESERVE || s.shndx >= object_.sections.size())
    fail("{}: relocation against symbol `{}' of a special section", object_.name, s.name);
  // A section symbol or a local label (.LC0): find the piece it points into.
  pl.section = s.shndx;
  int64_t at = static_cast<int64_t>(s.value) + r.addend;
  int64_t probe = at + arch::pc_relative_bias(r.type);
  pl.probe = probe;
  std::optional<size_t> only, hit;
  size_t count = 0;
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const Piece& p = pieces_[i];
    if (p.section != pl.section) continue;
    ++count;
    only = i;
    if (probe >= static_cast<int64_t>(p.offset) && probe < static_cast<int64_t>(p.offset + std::max<uint64_t>(p.size, 1)))
      hit = i;
  }
  if (!hit && count == 1) hit = only;
  if (hit) {
    pl.piece = hit;
    pl.offset = at - static_cast<int64_t>(pieces_[*hit].offset);
  } else {
    pl.offset = at;
  }
  return pl;
}

std::vector<ElfRela> ObjectView::relocations_in(const Piece& p) const {
  std::vector<ElfRela> out;
  for (const auto& r : object_.relocations_of(p.section))
    if (r.offset >= p.offset && r.offset < p.offset + p.size) {
      ElfRela x = r;
      x.offset -= p.offset;
      out.push_back(x);
    }
  std::sort(out.begin(), out.end(), [](const ElfRela& a, const ElfRela& b) { return a.offset < b.offset; });
  return out;
}

Bytes ObjectView::bytes(const Piece& p) const {
  if (p.bss) return Bytes(p.size, 0);
  const Bytes& d = object_.contents[p.section];
  return Bytes(d.begin() + p.offset, d.begin() + p.offset + p.size);
}

std::string ObjectView::folded_into(const Piece& p) const {
  if (!p.function) return "";
  Bytes code = bytes(p);
  auto relocs = relocations_in(p);
  if (relocs.size() != 1) return "";
  // An optional marker (endbr64: no register read or written), then one
  // direct jump, the function's only relocation.
  size_t at = 0;
  for (int n = 0; at < code.size() && n < 2; ++n) {
    auto ins = arch::decode_instruction({code.data() + at, code.size() - at}, at);
    if (!ins) return "";
    if (ins->flow == arch::Instruction::Flow::Jump && at + ins->length == code.size()) {
      Place pl = place_of(relocs.front());
      if (relocs.front().offset < at || pl.undefined || !pl.piece || &pieces_[*pl.piece] == &p ||
          !pieces_[*pl.piece].function)
        return "";
      return pieces_[*pl.piece].name;
    }
    if (ins->flow != arch::Instruction::Flow::Next || ins->reads || ins->writes) return "";
    at += ins->length;
  }
  return "";
}

}  // namespace graft
