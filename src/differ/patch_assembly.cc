#include "differ/patch_assembly.h"

#include <elf.h>
#include <elfutils/libdw.h>

#include <cstring>

#include "common/error.h"
#include "differ/correlation.h"

namespace graft {

PatchAssembler::PatchAssembler(const std::vector<const UnitDiff*>& units) : units_(units) {
  out_.name = "the patched build's changed functions";
  out_.sections.push_back({});
  out_.contents.emplace_back();
  out_.symbols.push_back({});
  for (const UnitDiff* u : units_)
    for (size_t i = 0; i < u->patched().pieces().size(); ++i) {
      const Piece& p = u->patched().pieces()[i];
      if (!p.local && !u->original_of(i)) new_globals_.emplace(p.name, Key{u, i});
    }
}

// A piece of the patched build is copied into the patch (rather than
// referred to in the target) when the target has no such thing, or its own
// copy would not do.
bool PatchAssembler::copied(const UnitDiff& u, size_t piece) const {
  const Piece& p = u.patched().pieces()[piece];
  if (!u.original_of(piece)) return true;       // new
  if (p.function) return u.changed(piece) || is_cold_piece(p.name);
  if (p.constant && p.local) return true;       // constants are copied
  if (u.carries(piece)) return true;            // changed, and never written
  return p.name.rfind("DW.ref.", 0) == 0;       // the personality pointer of C++ unwinding
}

size_t PatchAssembler::include_section(const UnitDiff& u, size_t section) {
  Key key{&u, section};
  if (auto it = sections_.find(key); it != sections_.end()) return it->second;
  const RelocatableObject& obj = u.patched().object();
  const ElfSection& s = obj.sections.at(section);
  if (s.flags & SHF_TLS)
    fail("{}: the patch would need thread-local variables (section {}), which graft cannot add",
         u.patched().source(), s.name);
  ElfSection copy = s;
  copy.link = copy.info = 0;
  size_t index = out_.add_section(copy, obj.contents.at(section));
  sections_[key] = index;
  // Every symbol defined in the section comes along (functions, variables,
  // string labels), and the section symbol.
  for (uint32_t i = 1; i < obj.symbols.size(); ++i) {
    const ElfSymbol& sym = obj.symbols[i];
    if (sym.shndx != section || sym.type == STT_FILE) continue;
    ElfSymbol c = sym;
    c.shndx = static_cast<uint16_t>(index);
    c.file.clear();
    symbols_[{&u, i}] = out_.add_symbol(c);
  }
  for (size_t i = 0; i < u.patched().pieces().size(); ++i) {
    const Piece& p = u.patched().pieces()[i];
    if (p.section != section) continue;
    if (!p.local && !defined_globals_.count(p.name)) defined_globals_[p.name] = symbols_.at({&u, p.symbol});
    if (!p.function && !u.original_of(i) && !p.constant) new_variables_.push_back(p.name);
  }
  pending_.push_back(key);
  return index;
}

uint32_t PatchAssembler::external(const std::string& name, const std::string& file) {
  auto key = std::make_pair(name, file);
  if (auto it = externals_.find(key); it != externals_.end()) return it->second;
  ElfSymbol s;
  s.name = name;
  s.bind = STB_GLOBAL;
  s.type = STT_NOTYPE;
  s.shndx = SHN_UNDEF;
  s.file = file;
  return externals_[key] = out_.add_symbol(s);
}

uint32_t PatchAssembler::map_symbol(const UnitDiff& u, const ElfRela& r, int64_t* addend) {
  const ObjectView& v = u.patched();
  const ElfSymbol& sym = v.object().symbols.at(r.symbol);
  *addend = r.addend;
  if (auto it = symbols_.find({&u, r.symbol}); it != symbols_.end()) return it->second;
  Place pl = v.place_of(r);
  if (pl.undefined) {
    auto g = new_globals_.find(sym.name);
    if (g == new_globals_.end()) return external(sym.name, "");
    const auto& [gu, gp] = g->second;
    include_section(*gu, gu->patched().pieces()[gp].section);
    if (gu->patched().pieces()[gp].function) functions_.push_back({gu, gp, false});
    return symbols_.at({gu, gu->patched().pieces()[gp].symbol});
  }
  if (!pl.piece) {
    const ElfSection& s = v.object().sections[pl.section];
    if ((s.flags & SHF_WRITE) && !v.section_is_constant(pl.section))
      fail("{}: code refers to anonymous writable data in section {}; graft cannot tell whether "
           "the running target has it",
           v.source(), s.name);
    include_section(u, pl.section);
    return symbols_.at({&u, r.symbol});
  }
  const Piece& p = v.pieces()[*pl.piece];
  if (!p.local) {
    if (auto d = defined_globals_.find(p.name); d != defined_globals_.end() && copied(u, *pl.piece)) {
      *addend = pl.offset;  // another unit's copy of the same (C++ inline or template) function
      return d->second;
    }
  }
  if (copied(u, *pl.piece)) {
    bool was_included = sections_.count({&u, p.section});
    include_section(u, p.section);
    if (!was_included && p.function && !is_cold_piece(p.name) && !u.original_of(*pl.piece))
      functions_.push_back({&u, *pl.piece, false});
    return symbols_.at({&u, r.symbol});
  }
  // The target's own: named as in the original build.
  const Piece& o = u.original()->pieces()[*u.original_of(*pl.piece)];
  if (p.tls) fail("{}: refers to thread-local `{}', which graft cannot patch", v.source(), p.name);
  *addend = pl.offset;
  expected_.emplace(o.name, u.original()->source());
  return external(o.name, o.local ? (o.file.empty() ? u.original()->source() : o.file) : "");
}

void PatchAssembler::replace(const UnitDiff& u, size_t piece) {
  const Piece& p = u.patched().pieces()[piece];
  const Piece& o = u.original()->pieces()[*u.original_of(piece)];
  if (!o.local)
    for (const auto& f : functions_)
      if (f.replaces && !f.unit->patched().pieces()[f.piece].local &&
          f.unit->original()->pieces()[*f.unit->original_of(f.piece)].name == o.name)
        return;  // a C++ inline function changed in several units: replaced once
  include_section(u, p.section);
  functions_.push_back({&u, piece, true});
  ReplacementRecord rec;
  rec.target = o.name;
  rec.file = o.local ? (o.file.empty() ? u.original()->source() : o.file) : "";
  rec.symbol = symbols_.at({&u, p.symbol});
  out_.replacements.push_back(rec);
  drain();
}

void PatchAssembler::drain() {
  while (!pending_.empty()) {
    auto [u, section] = pending_.front();
    pending_.pop_front();
    std::vector<ElfRela> relas;
    for (const auto& r : u->patched().object().relocations_of(section)) {
      ElfRela c = r;
      c.symbol = map_symbol(*u, r, &c.addend);
      relas.push_back(c);
    }
    out_.relocations[sections_.at({u, section})] = std::move(relas);
  }
}

// A new .eh_frame with the CIEs and FDEs of the included code only: the
// patched object's describes every function of its unit.
void PatchAssembler::add_unwind_info() {
  Bytes frame;
  std::vector<std::pair<const UnitDiff*, ElfRela>> relas;  // offsets in `frame`
  static const unsigned char ident[EI_NIDENT] = {ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3,
                                                 ELFCLASS64, ELFDATA2LSB, EV_CURRENT};
  for (const UnitDiff* u : units_) {
    const RelocatableObject& obj = u->patched().object();
    const ElfSection* eh = obj.section(".eh_frame");
    if (!eh) continue;
    const Bytes& data = obj.contents[eh->index];
    const auto& eh_relas = obj.relocations_of(eh->index);
    auto copy_entry = [&](uint64_t from, uint64_t to) {
      uint64_t at = frame.size();
      frame.insert(frame.end(), data.begin() + from, data.begin() + to);
      for (const auto& r : eh_relas)
        if (r.offset >= from && r.offset < to) {
          ElfRela c = r;
          c.offset = r.offset - from + at;
          relas.push_back({u, c});
        }
      return at;
    };
    std::map<uint64_t, uint64_t> cie_at;  // offset in the unit's section -> in `frame`
    Elf_Data d{};
    d.d_buf = const_cast<uint8_t*>(data.data());
    d.d_type = ELF_T_BYTE;
    d.d_size = data.size();
    Dwarf_Off offset = 0, next = 0;
    while (offset < data.size()) {
      Dwarf_CFI_Entry entry;
      int rc = dwarf_next_cfi(ident, &d, true, offset, &next, &entry);
      if (rc == 1) break;
      if (rc != 0 || next <= offset || next > data.size())
        fail("{}: malformed .eh_frame at offset {:#x}", obj.name, offset);
      if (!dwarf_cfi_cie_p(&entry)) {
        uint64_t field = static_cast<uint64_t>(entry.fde.start - data.data());
        const ElfRela* pc = nullptr;
        for (const auto& r : eh_relas)
          if (r.offset == field) pc = &r;
        uint32_t len;
        std::memcpy(&len, data.data() + offset, 4);
        if (len == 0xffffffff) fail("{}: 64-bit .eh_frame entries are not supported", obj.name);
        if (pc && sections_.count({u, obj.symbols.at(pc->symbol).shndx})) {
          uint64_t cie = entry.fde.CIE_pointer;
          if (!cie_at.count(cie)) {
            Dwarf_Off cie_next = 0;
            Dwarf_CFI_Entry ce;
            if (dwarf_next_cfi(ident, &d, true, cie, &cie_next, &ce) != 0 || !dwarf_cfi_cie_p(&ce))
              fail("{}: .eh_frame FDE at {:#x} has no CIE", obj.name, offset);
            cie_at[cie] = copy_entry(cie, cie_next);
          }
          uint64_t at = copy_entry(offset, next);
          uint32_t pointer = static_cast<uint32_t>(at + 4 - cie_at[cie]);
          std::memcpy(frame.data() + at + 4, &pointer, 4);
        }
      }
      offset = next;
    }
  }
  if (frame.empty()) return;
  frame.insert(frame.end(), 4, 0);  // terminator
  ElfSection s;
  s.name = ".eh_frame";
  s.type = SHT_PROGBITS;
  s.flags = SHF_ALLOC;
  s.align = 8;
  s.size = frame.size();
  size_t index = out_.add_section(s, std::move(frame));
  std::vector<ElfRela> mapped;
  for (auto& [u, r] : relas) {
    ElfRela c = r;
    c.symbol = map_symbol(*u, r, &c.addend);
    mapped.push_back(c);
  }
  out_.relocations[index] = std::move(mapped);
  drain();
}

bool PatchAssembler::included_code(const UnitDiff& u, uint32_t symbol) const {
  const RelocatableObject& obj = u.patched().object();
  const ElfSymbol& s = obj.symbols.at(symbol);
  if (s.shndx == SHN_UNDEF || s.shndx >= obj.sections.size()) return false;
  return (obj.sections[s.shndx].flags & SHF_EXECINSTR) && sections_.count({&u, s.shndx});
}

std::map<std::string, size_t> PatchAssembler::carry_entries(const std::vector<EntryTable>& tables) {
  std::map<std::string, size_t> carried;
  auto new_section = [&](const ElfSection& like) {
    ElfSection s = like;
    s.link = s.info = 0;
    s.size = 0;
    size_t index = out_.add_section(s, {});
    ElfSymbol sym;
    sym.type = STT_SECTION;
    sym.bind = STB_LOCAL;
    sym.shndx = static_cast<uint16_t>(index);
    return std::make_pair(index, out_.add_symbol(sym));
  };
  auto append = [&](size_t index, const Bytes& from, size_t at, size_t size) {
    Bytes& b = out_.contents[index];
    size_t offset = b.size();
    b.insert(b.end(), from.begin() + at, from.begin() + at + size);
    out_.sections[index].size = b.size();
    return offset;
  };
  for (const EntryTable& t : tables) {
    carried_tables_.insert(t.section);
    if (!t.parallel.empty()) carried_tables_.insert(t.parallel);
    std::pair<size_t, uint32_t> out{0, 0}, parallel{0, 0}, chunk_out{0, 0};
    for (const UnitDiff* u : units_) {
      const RelocatableObject& obj = u->patched().object();
      const std::string& unit = u->patched().source();
      const ElfSection* sec = obj.section(t.section);
      if (!sec || sec->type == SHT_NOBITS) continue;
      const Bytes& data = obj.contents[sec->index];
      size_t count = data.size() / t.entry_size;
      if (data.size() % t.entry_size)
        fail("{}: section {} holds {} bytes, not a whole number of {}-byte entries", unit, t.section,
             data.size(), t.entry_size);
      const ElfSection* par = t.parallel.empty() ? nullptr : obj.section(t.parallel);
      if (!t.parallel.empty() && (!par || obj.contents[par->index].size() != count * t.parallel_entry_size))
        fail("{}: section {} does not have one {}-byte entry for each entry of {}", unit, t.parallel,
             t.parallel_entry_size, t.section);
      const ElfSection* chunk = t.chunk_section.empty() ? nullptr : obj.section(t.chunk_section);
      std::map<size_t, std::vector<ElfRela>> by_entry;
      for (const auto& r : obj.relocations_of(sec->index)) by_entry[r.offset / t.entry_size].push_back(r);
      for (const auto& [entry, relas] : by_entry) {
        size_t base = entry * t.entry_size;
        const ElfRela* first = nullptr;
        for (const auto& r : relas)
          if (r.offset == base) first = &r;
        if (!first || !included_code(*u, first->symbol)) continue;
        if (!out.first) out = new_section(*sec);
        size_t at = append(out.first, data, base, t.entry_size);
        if (par) {
          if (!parallel.first) parallel = new_section(*par);
          append(parallel.first, obj.contents[par->index], entry * t.parallel_entry_size, t.parallel_entry_size);
        }
        std::vector<ElfRela> mapped;
        for (const auto& r : relas) {
          ElfRela c = r;
          c.offset = r.offset - base + at;
          const ElfSymbol& s = obj.symbols.at(r.symbol);
          if (chunk && r.offset == base + t.chunk_field && s.shndx == chunk->index) {
            // The entry's own piece of the chunk section, copied alone.
            uint64_t start = s.value + static_cast<uint64_t>(r.addend);
            size_t length = data[base + t.chunk_length];
            const Bytes& from = obj.contents[chunk->index];
            if (start + length > from.size())
              fail("{}: an entry of {} refers past the end of {}", unit, t.section, t.chunk_section);
            if (!chunk_out.first) chunk_out = new_section(*chunk);
            size_t copy_at = append(chunk_out.first, from, start, length);
            for (const auto& cr : obj.relocations_of(chunk->index)) {
              if (cr.offset < start || cr.offset >= start + length) continue;
              ElfRela cc = cr;
              cc.offset = cr.offset - start + copy_at;
              cc.symbol = map_symbol(*u, cr, &cc.addend);
              out_.relocations[chunk_out.first].push_back(cc);
            }
            c.symbol = chunk_out.second;
            c.addend = static_cast<int64_t>(copy_at);
          } else {
            c.symbol = map_symbol(*u, r, &c.addend);
          }
          mapped.push_back(c);
        }
        auto& list = out_.relocations[out.first];
        list.insert(list.end(), mapped.begin(), mapped.end());
        ++carried[t.section];
      }
    }
    if (chunk_out.first) carried_tables_.insert(t.chunk_section);
  }
  drain();
  return carried;
}

std::vector<ReferenceIntoPatch> PatchAssembler::references_into_patch() const {
  std::vector<ReferenceIntoPatch> out;
  for (const UnitDiff* u : units_) {
    const RelocatableObject& obj = u->patched().object();
    std::set<size_t> with_pieces;
    for (const auto& p : u->patched().pieces()) with_pieces.insert(p.section);
    for (const auto& [section, relas] : obj.relocations) {
      const ElfSection& s = obj.sections.at(section);
      if (!(s.flags & SHF_ALLOC) || with_pieces.count(section) || sections_.count({u, section}) ||
          carried_tables_.count(s.name))
        continue;
      for (const auto& r : relas) {
        if (!included_code(*u, r.symbol)) continue;
        Place pl = u->patched().place_of(r);
        std::string fn = pl.piece ? u->patched().pieces()[*pl.piece].name
                                  : obj.sections[obj.symbols[r.symbol].shndx].name;
        out.push_back({u, s.name, fn});
        break;
      }
    }
  }
  return out;
}

RelocatableObject PatchAssembler::finish() {
  drain();
  add_unwind_info();
  return std::move(out_);
}

}  // namespace graft
