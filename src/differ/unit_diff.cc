#include "differ/unit_diff.h"

#include <elf.h>

#include <algorithm>
#include <fmt/format.h>

#include "arch/x86_64/address_flow.h"
#include "arch/x86_64/relocation.h"
#include "common/hash.h"
#include "differ/correlation.h"

namespace graft {

bool is_numbered_static(const Piece& p) {
  return !p.function && p.local && !p.constant && has_compiler_number(p.name);
}

namespace {

std::vector<CorrelationSymbol> correlation_input(const ObjectView& v) {
  std::vector<CorrelationSymbol> out;
  for (size_t i = 0; i < v.pieces().size(); ++i) {
    const Piece& p = v.pieces()[i];
    CorrelationSymbol c{p.name, p.function, ""};
    if (is_numbered_static(p) && !v.users(i).empty()) {
      std::string owner;
      for (size_t u : v.users(i)) {
        std::string n = stable_name(v.pieces()[u].name);
        if (owner.empty() || n < owner) owner = n;
      }
      c.owner = owner;
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::string c_string_at(const Bytes& d, int64_t at) {
  if (at < 0 || static_cast<uint64_t>(at) >= d.size()) return "<outside>";
  size_t start = static_cast<size_t>(at);
  while (start > 0 && d[start - 1] != 0) --start;  // the literal containing `at`
  size_t end = start;
  while (end < d.size() && d[end] != 0) ++end;
  return fmt::format("\"{}\"+{}", std::string(d.begin() + start, d.begin() + end), at - int64_t(start));
}

}  // namespace

UnitDiff::UnitDiff(const ObjectView* original, const ObjectView& patched)
    : original_(original), patched_(patched) {
  if (original_) to_original_ = correlate(correlation_input(*original_), correlation_input(patched_));
  compare_functions();
  compare_data();
}

std::optional<size_t> UnitDiff::original_of(size_t p) const {
  auto it = to_original_.find(p);
  if (it == to_original_.end()) return std::nullopt;
  return it->second;
}

std::string UnitDiff::piece_name(const ObjectView& v, size_t piece, bool patched_side) const {
  if (!patched_side) return v.pieces()[piece].name;
  auto o = original_of(piece);
  if (o) return original_->pieces()[*o].name;
  return "new:" + v.pieces()[piece].name;
}

std::string UnitDiff::describe(const ObjectView& v, const Place& pl, bool patched_side) const {
  const auto& obj = v.object();
  if (pl.undefined) return fmt::format("extern:{}{:+}", obj.symbols[pl.symbol].name, pl.offset);
  if (pl.piece) {
    const Piece& p = v.pieces()[*pl.piece];
    if (p.constant && p.local) {
      // By contents: renumbered (CSWTCH.12) or changed tables compare right.
      std::string inner;
      Bytes b = v.bytes(p);
      for (const auto& r : v.relocations_in(p)) {
        size_t w = arch::object_field_width(r.type);
        for (size_t k = 0; k < w && r.offset + k < b.size(); ++k) b[r.offset + k] = 0;
        Place ip = v.place_of(r);
        inner += fmt::format("{}:{}:{};", r.offset, r.type,
                             ip.piece && *ip.piece == *pl.piece ? std::string("self") : describe(v, ip, patched_side));
      }
      return fmt::format("const:{}:{}{:+}", stable_name(p.name), sha256_hex(b).substr(0, 16) + inner,
                         pl.offset);
    }
    return fmt::format("{}{:+}", piece_name(v, *pl.piece, patched_side), pl.offset);
  }
  const ElfSection& sec = obj.sections[pl.section];
  const Bytes& d = obj.contents[pl.section];
  if (v.section_is_strings(pl.section)) {
    // Renumbered labels (.LC3) and merged sections compare by the text.
    return fmt::format("str:{}", c_string_at(d, pl.probe));
  }
  if ((sec.flags & SHF_MERGE) && sec.entsize > 0 && pl.probe >= 0) {
    // A pool of constants (.rodata.cst16): the entry referred to.
    uint64_t start = uint64_t(pl.probe) / sec.entsize * sec.entsize;
    if (start + sec.entsize <= d.size())
      return fmt::format("cst:{}{:+}", to_hex({d.data() + start, sec.entsize}), pl.offset - int64_t(start));
  }
  return fmt::format("anon:{}:{}{:+}", stable_name(sec.name), sha256_hex(d).substr(0, 16), pl.offset);
}

Bytes UnitDiff::masked_bytes(const ObjectView& v, size_t piece) {
  const Piece& p = v.pieces()[piece];
  Bytes b = v.bytes(p);
  for (const auto& r : v.relocations_in(p)) {
    size_t w = arch::object_field_width(r.type);
    for (size_t k = 0; k < w && r.offset + k < b.size(); ++k) b[r.offset + k] = 0;
  }
  return b;
}

std::string UnitDiff::relocation_places(const ObjectView& v, size_t piece, bool patched_side) const {
  std::string relocs;
  for (const auto& r : v.relocations_in(v.pieces()[piece]))
    relocs += fmt::format("\n{:#x} {} {}", r.offset, r.type, describe(v, v.place_of(r), patched_side));
  return relocs;
}

std::string UnitDiff::normalized(const ObjectView& v, size_t piece, bool patched_side) const {
  return to_hex(masked_bytes(v, piece)) + relocation_places(v, piece, patched_side);
}

std::optional<std::vector<arch::ImmediateChange>> UnitDiff::immediate_only_change(size_t p) const {
  if (readers_.count(p)) return std::nullopt;  // replaced for the data it reads
  auto o = original_of(p);
  if (!original_ || !o) return std::nullopt;
  std::vector<std::pair<size_t, size_t>> pairs = {{p, *o}};
  auto pc = cold_pieces(patched_, p), oc = cold_pieces(*original_, *o);
  if (pc.size() != oc.size()) return std::nullopt;
  for (size_t k = 0; k < pc.size(); ++k) {
    auto co = original_of(pc[k]);
    if (!co) return std::nullopt;
    pairs.emplace_back(pc[k], *co);
  }
  std::vector<arch::ImmediateChange> all;
  for (auto [mine, theirs] : pairs) {
    if (relocation_places(patched_, mine, true) != relocation_places(*original_, theirs, false))
      return std::nullopt;
    auto changes = arch::immediate_changes(masked_bytes(*original_, theirs), masked_bytes(patched_, mine));
    if (!changes) return std::nullopt;
    all.insert(all.end(), changes->begin(), changes->end());
  }
  return all;
}

void UnitDiff::leave_out(size_t p) {
  changed_set_.erase(p);
  std::erase(changed_, p);
}

std::vector<size_t> UnitDiff::cold_pieces(const ObjectView& v, size_t function) const {
  std::vector<size_t> out;
  const std::string& name = v.pieces()[function].name;
  for (size_t i = 0; i < v.pieces().size(); ++i) {
    const Piece& p = v.pieces()[i];
    if (p.function && i != function && is_cold_piece(p.name) && cold_piece_parent(p.name) == name)
      out.push_back(i);
  }
  return out;
}

void UnitDiff::compare_functions() {
  if (!original_) return;
  for (size_t i = 0; i < patched_.pieces().size(); ++i) {
    const Piece& p = patched_.pieces()[i];
    if (!p.function || is_cold_piece(p.name)) continue;
    auto o = original_of(i);
    if (!o) continue;  // a new function
    bool differs = normalized(patched_, i, true) != normalized(*original_, *o, false);
    auto pc = cold_pieces(patched_, i), oc = cold_pieces(*original_, *o);
    if (pc.size() != oc.size()) differs = true;
    for (size_t k = 0; !differs && k < pc.size(); ++k) {
      auto co = original_of(pc[k]);
      differs = !co || normalized(patched_, pc[k], true) != normalized(*original_, *co, false);
    }
    if (differs) {
      changed_.push_back(i);
      changed_set_.insert(i);
    }
  }
}

void UnitDiff::compare_data() {
  if (!original_) return;
  std::set<size_t> paired;
  for (size_t i = 0; i < patched_.pieces().size(); ++i) {
    const Piece& p = patched_.pieces()[i];
    auto o = original_of(i);
    if (o) paired.insert(*o);
    if (p.function || !o) continue;
    const Piece& q = original_->pieces()[*o];
    bool differs = p.size != q.size || normalized(patched_, i, true) != normalized(*original_, *o, false);
    const std::string& section = patched_.object().sections[p.section].name;
    if (p.constant && p.local) {
      // Its readers differ with it (see the top of unit_diff.h): only said.
      bool named = !patched_.section_is_strings(p.section) && p.name.rfind(".L", 0) != 0;
      if (named && differs) carry_data(i, q, fmt::format("it is read-only (section {})", section));
      continue;
    }
    std::string where = fmt::format("`{}' ({}, section {})", q.name, patched_.source(), section);
    // A static no code writes holds its initial value for good: the patch
    // can carry the new one (a global may have readers in other files).
    std::string written;
    if (differs && p.local && !p.tls) {
      written = writes_to(patched_, i);
      if (written.empty()) written = writes_to(*original_, *o);
      if (written.empty()) {
        carry_data(i, q, "no code writes it");
        continue;
      }
      written = "; and " + written;
    }
    if (p.size != q.size) {
      refusals_.push_back(fmt::format("{} changes size from {} to {} bytes: the running code keeps "
                                      "using the original layout{}",
                                      where, q.size, p.size, written));
      continue;
    }
    if (!differs) continue;
    Bytes a = original_->bytes(q), b = patched_.bytes(p);
    size_t at = 0;
    while (at < a.size() && a[at] == b[at]) ++at;
    std::string what = at < a.size() ? fmt::format("its initial value differs at +{:#x}", at)
                                     : std::string("the addresses it is initialised with differ");
    refusals_.push_back(fmt::format("{} changes: {}; graft does not rewrite existing data "
                                    "(only functions are replaced){}",
                                    where, what, written));
  }
  for (size_t o = 0; o < original_->pieces().size(); ++o) {
    const Piece& q = original_->pieces()[o];
    if (paired.count(o) || !is_numbered_static(q)) continue;
    refusals_.push_back(fmt::format("static local `{}' ({}) has no counterpart in the patched "
                                    "build: removed, or renumbered beyond recognition",
                                    q.name, original_->source()));
  }
}

std::string UnitDiff::writes_to(const ObjectView& v, size_t piece) const {
  const std::string& name = v.pieces()[piece].name;
  for (size_t f = 0; f < v.pieces().size(); ++f) {
    const Piece& user = v.pieces()[f];
    auto relocations = v.relocations_in(user);
    std::optional<arch::DecodedFunction> code;  // decoded once it refers to the piece
    std::set<uint64_t> relocated;
    for (const auto& r : relocations) {
      Place pl = v.place_of(r);
      if (!pl.piece || *pl.piece != piece) continue;
      if (!user.function)
        return fmt::format("`{}' holds its address (`{}')", user.name, name);
      if (!code) {
        code = arch::decode_function(v.bytes(user));
        for (const auto& other : relocations) relocated.insert(other.offset);
      }
      const arch::Instruction* ins = code->containing(r.offset);
      if (!ins)
        return fmt::format("graft cannot decode `{}' at +{:#x}, where it refers to `{}'", user.name, r.offset,
                           name);
      if (ins->memory_write) return fmt::format("`{}' writes it at +{:#x}", user.name, ins->address);
      if (ins->takes_address)
        if (auto use = arch::address_use(*code, ins->address, relocated))
          return fmt::format("`{}' takes its address at +{:#x} and {}", user.name, ins->address, *use);
    }
  }
  return "";
}

void UnitDiff::carry_data(size_t piece, const Piece& original, const std::string& why) {
  const Piece& p = patched_.pieces()[piece];
  carried_data_.insert(piece);
  std::vector<std::string> readers;
  for (size_t u : patched_.users(piece)) {
    size_t f = u;
    const Piece& user = patched_.pieces()[u];
    if (is_cold_piece(user.name))  // its function is replaced with it
      if (auto parent = patched_.find(cold_piece_parent(user.name), true)) f = *parent;
    readers.push_back(patched_.pieces()[f].name);
    if (!original_of(f) || changed_set_.count(f)) continue;  // new, or replaced anyway
    changed_.push_back(f);
    changed_set_.insert(f);
    readers_[f] = original.name;
  }
  std::sort(readers.begin(), readers.end());
  readers.erase(std::unique(readers.begin(), readers.end()), readers.end());
  std::string list;
  for (const auto& r : readers) list += fmt::format("{}`{}'", list.empty() ? "" : ", ", r);
  notes_.push_back(fmt::format("`{}' ({}) changes{}; {}, so the patch carries the new one and replaces "
                               "what reads it: {}",
                               original.name, patched_.source(),
                               p.size != original.size ? fmt::format(" from {} to {} bytes", original.size, p.size)
                                                       : std::string(""),
                               why, list.empty() ? "nothing" : list));
}

std::optional<std::string> UnitDiff::replaced_as_reader(size_t piece) const {
  auto it = readers_.find(piece);
  if (it == readers_.end()) return std::nullopt;
  return fmt::format("reads `{}', which the fix changes", it->second);
}

}  // namespace graft
