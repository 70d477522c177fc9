#include "linker/object_linker.h"

#include <elf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "arch/x86_64/jump.h"
#include "arch/x86_64/relocation.h"
#include "linker/eh_frame_index.h"
#include "linker/entry_thunks.h"
#include "linker/register_contract.h"
#include "linker/target_symbols.h"
#include "common/error.h"

namespace graft {

namespace {

enum Part { kCode, kRodata, kData, kBss, kParts };

struct Placement {
  Part part;
  uint64_t offset;  // within the part
};

uint64_t align_up(uint64_t v, uint64_t a) { return a <= 1 ? v : (v + a - 1) / a * a; }

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// `#target` of GRAFT_REPLACE: an identifier, or a string literal to unquote.
std::string unquote(const std::string& s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return s;
  std::string out;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == '\\' && i + 2 < s.size()) ++i;
    out.push_back(s[i]);
  }
  return out;
}

class ObjectLinker {
 public:
  ObjectLinker(const RelocatableObject& obj, const ElfFile& target, const std::string& target_path)
      : obj_(obj), target_(&target), target_path_(target_path), symbols_(std::in_place, target) {}
  // No target object: every undefined symbol comes from a library (the
  // runtime, linked at apply time against the process's libc).
  explicit ObjectLinker(const RelocatableObject& obj) : obj_(obj) {}

  Patch link(const std::string& name) {
    patch_.name = name;
    if (!target_) {
      place_sections();
      collect_externals();
      layout();
      copy_section_bytes();
      emit_relocations();
      return std::move(patch_);
    }
    const ElfFile& target_ = *this->target_;
    patch_.target.path = target_path_;
    auto id = target_.build_id();
    if (!id) fail("{}: has no GNU build-id note; graft identifies targets by build-id", target_.name());
    patch_.target.build_id = *id;
    if (target_.type() != ET_EXEC && target_.type() != ET_DYN)
      fail("{}: not an executable or shared library", target_.name());
    patch_.target.position_independent = target_.type() == ET_DYN;

    place_sections();
    read_resolve_hints();
    collect_externals();
    layout();
    copy_section_bytes();
    emit_relocations();
    read_replacements();
    read_callbacks();
    patch_.cumulative = obj_.section(".graft.cumulative") != nullptr;
    return std::move(patch_);
  }

  // Global functions of default visibility, by image offset (the API of an
  // object linked without a target: the runtime).
  std::map<std::string, uint64_t> exports() const {
    std::map<std::string, uint64_t> out;
    for (const auto& s : obj_.symbols)
      if (s.bind == STB_GLOBAL && s.type == STT_FUNC && s.visibility == STV_DEFAULT && defined_here(s))
        out[s.name] = symbol_offset(s, 0);
    return out;
  }

 private:
  const ElfSymbol& sym(uint32_t index) const {
    if (index == 0 || index >= obj_.symbols.size()) fail("{}: bad symbol index {}", obj_.name, index);
    return obj_.symbols[index];
  }

  bool defined_here(const ElfSymbol& s) const {
    return s.shndx != SHN_UNDEF && s.shndx < SHN_LORESERVE && placed_.count(s.shndx);
  }

  void place_sections() {
    // The unwind index goes first in rodata (see eh_frame_index.h).
    if (const ElfSection* eh = obj_.section(".eh_frame")) {
      eh_frame_ = eh;
      fdes_ = read_fdes(obj_, *eh);
      part_size_[kRodata] = eh_frame_hdr_size(fdes_.size());
    }
    for (const auto& s : obj_.sections) {
      if (s.index == 0 || !(s.flags & SHF_ALLOC) || starts_with(s.name, ".graft.") || s.type == SHT_NOTE)
        continue;
      if (s.flags & SHF_TLS)
        fail("{}: section {} holds thread-local variables, which patches cannot define",
             obj_.name, s.name);
      if (s.type == SHT_INIT_ARRAY || s.type == SHT_FINI_ARRAY || s.type == SHT_PREINIT_ARRAY)
        fail("{}: section {} holds constructors or destructors, which patches cannot have",
             obj_.name, s.name);
      Part part = (s.flags & SHF_EXECINSTR) ? kCode
                  : s.type == SHT_NOBITS    ? kBss
                  : (s.flags & SHF_WRITE)   ? kData
                                            : kRodata;
      part_size_[part] = align_up(part_size_[part], s.align);
      placed_[s.index] = {part, part_size_[part]};
      part_size_[part] += s.size;
      // The zero word that ends a list of CIEs and FDEs: libgcc's
      // __register_frame_info reads up to it (a final link gets it from
      // crtend.o).
      if (eh_frame_ && s.index == eh_frame_->index) part_size_[part] += 4;
    }
    // Where libgcc keeps its registration of the patch's .eh_frame (its
    // `struct object', written by the process: so in bss).
    if (eh_frame_ && target_) {
      part_size_[kBss] = align_up(part_size_[kBss], 16);
      unwind_object_ = part_size_[kBss];
      part_size_[kBss] += kUnwindObjectSize;
    }
  }

  void read_resolve_hints() {
    for (const auto& [offset, strings] : records(".graft.resolve", 16)) {
      (void)offset;
      if (!strings.count(0) || !strings.count(8))
        fail("{}: malformed GRAFT_RESOLVE_LOCAL record", obj_.name);
      resolve_hints_[unquote(strings.at(0))] = strings.at(8);
    }
  }

  // Each record of a .graft.* section: its relocated string fields by offset
  // within the record. Records are found through their symbols: the
  // compiler may pad them (GCC aligns 24-byte objects to 32).
  // The field at `pointer_field` (if any) is a code pointer, returned in
  // `pointers` as (symbol, addend) by record offset.
  std::map<uint64_t, std::map<uint64_t, std::string>> records(
      const std::string& section, uint64_t record_size, uint64_t pointer_field = UINT64_MAX,
      std::map<uint64_t, std::pair<uint32_t, int64_t>>* pointers = nullptr) {
    std::map<uint64_t, std::map<uint64_t, std::string>> out;
    const ElfSection* sec = obj_.section(section);
    if (!sec) return out;
    for (const auto& s : obj_.symbols)
      if (s.shndx == sec->index && s.type == STT_OBJECT) {
        if (s.size != record_size || s.value > sec->size || record_size > sec->size - s.value)
          fail("{}: malformed record `{}' in {}", obj_.name, s.name, section);
        out[s.value];
      }
    {
      for (const auto& r : obj_.relocations_of(sec->index)) {
        auto rec = record_at(out, r.offset, record_size);
        if (!rec) fail("{}: relocation outside any record in {}", obj_.name, section);
        uint64_t field_offset = r.offset - *rec;
        if (field_offset == pointer_field && pointers) {
          (*pointers)[*rec] = {r.symbol, r.addend};
          continue;
        }
        const ElfSymbol& s = sym(r.symbol);
        if (s.shndx == SHN_UNDEF || s.shndx >= SHN_LORESERVE)
          fail("{}: {} record refers to undefined symbol {}", obj_.name, section, s.name);
        out[*rec][field_offset] = c_string(s.shndx, s.value + r.addend);
      }
    }
    return out;
  }

  static std::optional<uint64_t> record_at(const std::map<uint64_t, std::map<uint64_t, std::string>>& recs,
                                           uint64_t offset, uint64_t record_size) {
    auto it = recs.upper_bound(offset);
    if (it == recs.begin()) return std::nullopt;
    --it;
    if (offset - it->first >= record_size) return std::nullopt;
    return it->first;
  }

  std::string c_string(size_t section, uint64_t offset) const {
    if (section >= obj_.contents.size()) fail("{}: bad section index {}", obj_.name, section);
    const Bytes& d = obj_.contents[section];
    if (offset >= d.size()) fail("{}: string offset {:#x} outside its section", obj_.name, offset);
    auto end = std::find(d.begin() + offset, d.end(), 0);
    if (end == d.end()) fail("{}: unterminated string", obj_.name);
    return std::string(d.begin() + offset, end);
  }

  // The relocations of placed sections.
  std::vector<std::pair<size_t, const std::vector<ElfRela>*>> placed_relocations() const {
    std::vector<std::pair<size_t, const std::vector<ElfRela>*>> out;
    for (const auto& [section, relas] : obj_.relocations)
      if (placed_.count(section)) out.emplace_back(section, &relas);
    return out;
  }

  // Decides, for every symbol the code refers to, where it will come from,
  // and which GOT slots and call stubs the image needs.
  void collect_externals() {
    for (const auto& [section, relas] : placed_relocations()) {
      for (const auto& r : *relas) {
        const ElfSymbol& s = sym(r.symbol);
        auto cls = arch::classify_relocation(r.type);
        if (cls == arch::RelocationClass::Unsupported)
          fail("{}: {} in section {} (symbol `{}') is not supported in patches", obj_.name,
               arch::relocation_name(r.type), obj_.sections[section].name, s.name);
        int64_t ext = -1;
        if (!defined_here(s)) {
          if (s.shndx != SHN_UNDEF)
            fail("{}: symbol `{}' is defined in a section graft does not load", obj_.name, s.name);
          ext = external(s);
        }
        if (cls == arch::RelocationClass::GotRelative) slot(r.symbol, ext);
        if (cls == arch::RelocationClass::Call && ext >= 0 &&
            patch_.externals[ext].where == ExternalSymbol::Where::Library && !stubs_.count(ext)) {
          slot(r.symbol, ext);
          stubs_[ext] = stub_count_++;
        }
      }
    }
  }

  // An undefined symbol's file (set by the differ for a static) or a
  // GRAFT_RESOLVE_LOCAL hint restricts it to the statics of one source file.
  std::string file_of(const ElfSymbol& s) const {
    if (!s.file.empty()) return s.file;
    auto hint = resolve_hints_.find(s.name);
    return hint == resolve_hints_.end() ? "" : hint->second;
  }

  int64_t external(const ElfSymbol& s) {
    const std::string& name = s.name;
    std::string file = file_of(s);
    auto key = std::make_pair(name, file);
    if (auto it = external_index_.find(key); it != external_index_.end()) return it->second;
    ExternalSymbol e;
    e.name = name;
    const ElfSymbol* t = symbols_ ? symbols_->reference(name, file) : nullptr;
    if (t) {
      if (t->type == STT_GNU_IFUNC)
        fail("{}: `{}' is an IFUNC in {}; patches cannot refer to it", obj_.name, name, target_->name());
      e.where = ExternalSymbol::Where::Target;
      e.value = t->value;
      e.file = t->bind == STB_LOCAL ? t->file : "";
    }
    patch_.externals.push_back(e);
    return external_index_[key] = static_cast<int64_t>(patch_.externals.size() - 1);
  }

  // A GOT slot holding the address of symbol `index` (or external `ext`).
  uint64_t slot(uint32_t index, int64_t ext) {
    std::string key = ext >= 0 ? "e" + std::to_string(ext) : "s" + std::to_string(index);
    if (auto it = slots_.find(key); it != slots_.end()) return it->second;
    slots_[key] = slot_count_;
    slot_symbol_.push_back({index, ext});
    return slot_count_++;
  }

  void layout() {
    stubs_offset_ = align_up(part_size_[kCode], 16);
    part_size_[kCode] = stubs_offset_ + stub_count_ * arch::kStubSize;
    slots_offset_ = align_up(part_size_[kRodata], 8);
    part_size_[kRodata] = slots_offset_ + slot_count_ * 8;
    auto& L = patch_.layout;
    L.code_size = part_size_[kCode];
    L.rodata_offset = page_round_up(L.code_size);
    L.rodata_size = part_size_[kRodata];
    L.data_offset = L.rodata_offset + page_round_up(L.rodata_size);
    L.data_size = part_size_[kData];
    L.bss_size = part_size_[kBss];
    part_base_[kCode] = 0;
    part_base_[kRodata] = L.rodata_offset;
    part_base_[kData] = L.data_offset;
    part_base_[kBss] = L.data_offset + align_up(L.data_size, 64);
    L.bss_size = part_base_[kBss] + part_size_[kBss] - (L.data_offset + L.data_size);
    if (unwind_object_) {
      L.unwind_object = part_base_[kBss] + *unwind_object_;
      L.eh_frame = part_base_[kRodata] + placed_.at(eh_frame_->index).offset;
    }
    if (L.code_size == 0) fail("{}: the patch has no code", obj_.name);
    patch_.image.assign(L.file_size(), 0);
  }

  uint64_t image_offset(size_t section, uint64_t offset) const {
    const Placement& p = placed_.at(section);
    return part_base_[p.part] + p.offset + offset;
  }

  uint64_t symbol_offset(const ElfSymbol& s, int64_t addend) const {
    return image_offset(s.shndx, s.value) + addend;
  }

  void copy_section_bytes() {
    for (const auto& [index, p] : placed_) {
      if (p.part == kBss) continue;
      const Bytes& data = obj_.contents[index];
      std::memcpy(patch_.image.data() + image_offset(index, 0), data.data(), data.size());
    }
    for (const auto& [ext, n] : stubs_)
      arch::write_stub(patch_.image.data() + stubs_offset_ + n * arch::kStubSize);
    if (eh_frame_) {
      std::vector<uint64_t> functions;
      for (const auto& f : fdes_) {
        const ElfSymbol& s = sym(f.symbol);
        if (!defined_here(s)) fail("{}: .eh_frame describes code graft does not load", obj_.name);
        functions.push_back(symbol_offset(s, f.addend));
      }
      write_eh_frame_hdr(patch_.image.data(), part_base_[kRodata],
                         image_offset(eh_frame_->index, 0), fdes_, functions);
    }
  }

  void add_relocation(uint64_t at, uint32_t type, int64_t addend, int64_t ext, uint64_t to) {
    patch_.relocations.push_back({at, type, addend, ext, ext >= 0 ? 0 : to});
  }

  void emit_relocations() {
    for (const auto& [section, relas] : placed_relocations()) {
      for (const auto& r : *relas) {
        const ElfSymbol& s = sym(r.symbol);
        uint64_t at = image_offset(section, r.offset);
        int64_t ext = defined_here(s) ? -1 : external_index_.at({s.name, file_of(s)});
        uint64_t own = ext >= 0 ? 0 : symbol_offset(s, 0);
        switch (arch::classify_relocation(r.type)) {
          case arch::RelocationClass::Direct:
            add_relocation(at, r.type, r.addend, ext, own);
            break;
          case arch::RelocationClass::Call:
            if (ext >= 0 && stubs_.count(ext))
              add_relocation(at, arch::pc32_type(), r.addend, -1,
                             stubs_offset_ + stubs_.at(ext) * arch::kStubSize);
            else
              add_relocation(at, arch::pc32_type(), r.addend, ext, own);
            break;
          case arch::RelocationClass::GotRelative:
            add_relocation(at, arch::pc32_type(), r.addend, -1, slot_address(r.symbol, ext));
            break;
          case arch::RelocationClass::Unsupported:
            break;  // rejected in collect_externals
        }
      }
    }
    for (size_t i = 0; i < slot_symbol_.size(); ++i) {
      auto [index, ext] = slot_symbol_[i];
      uint64_t at = part_base_[kRodata] + slots_offset_ + i * 8;
      add_relocation(at, arch::abs64_type(), 0, ext, ext >= 0 ? 0 : symbol_offset(sym(index), 0));
    }
    for (const auto& [ext, n] : stubs_) {
      uint64_t stub = stubs_offset_ + n * arch::kStubSize;
      add_relocation(stub + arch::kStubSlotField, arch::pc32_type(), arch::kStubSlotAddend, -1,
                     slot_address(0, ext));
    }
  }

  uint64_t slot_address(uint32_t index, int64_t ext) const {
    std::string key = ext >= 0 ? "e" + std::to_string(ext) : "s" + std::to_string(index);
    return part_base_[kRodata] + slots_offset_ + slots_.at(key) * 8;
  }

  void read_replacements() {
    if (!obj_.replacements.empty()) {
      for (const auto& r : obj_.replacements) add_function(r.target, r.file, sym(r.symbol), r.addend);
      return;
    }
    auto strings = records(".graft.replace", 24, 16, &replacement_fields_);
    if (strings.empty())
      fail("{}: declares no replacement; use GRAFT_REPLACE(target, replacement)", obj_.name);
    for (const auto& [rec, fields] : strings) {
      auto repl = replacement_fields_.find(rec);
      if (!fields.count(0) || !fields.count(8) || repl == replacement_fields_.end())
        fail("{}: malformed GRAFT_REPLACE record", obj_.name);
      add_function(unquote(fields.at(0)), fields.at(8), sym(repl->second.first), repl->second.second);
    }
  }

  void read_callbacks() {
    std::map<uint64_t, std::pair<uint32_t, int64_t>> functions;
    for (const auto& [rec, fields] : records(".graft.callback", 16, 8, &functions)) {
      auto fn = functions.find(rec);
      if (!fields.count(0) || fn == functions.end())
        fail("{}: malformed GRAFT_PRE_PATCH/POST_PATCH/PRE_UNPATCH/POST_UNPATCH record", obj_.name);
      Callback c;
      bool known = false;
      for (auto k : {Callback::Kind::PrePatch, Callback::Kind::PostPatch,
                     Callback::Kind::PreUnpatch, Callback::Kind::PostUnpatch})
        if (fields.at(0) == callback_kind_name(k)) {
          c.kind = k;
          known = true;
        }
      if (!known) fail("{}: unknown callback kind `{}'", obj_.name, fields.at(0));
      if (patch_.callback(c.kind))
        fail("{}: more than one {} callback", obj_.name, fields.at(0));
      const ElfSymbol& s = sym(fn->second.first);
      if (!defined_here(s)) fail("{}: callback `{}' is not defined in the patch", obj_.name, s.name);
      const ElfSymbol& f = replacement_symbol(s, fn->second.second);
      if (placed_.at(f.shndx).part != kCode)
        fail("{}: callback `{}' is not code", obj_.name, f.name);
      c.function = f.name;
      c.offset = symbol_offset(f, 0);
      patch_.callbacks.push_back(std::move(c));
    }
  }

  // The function symbol a replacement pointer refers to.
  const ElfSymbol& replacement_symbol(const ElfSymbol& s, int64_t addend) const {
    if (s.type == STT_FUNC && addend == 0) return s;
    for (const auto& f : obj_.symbols)
      if (f.type == STT_FUNC && f.shndx == s.shndx && f.value == s.value + addend) return f;
    fail("{}: `{}' is not a function defined in the patch", obj_.name, s.name);
  }

  void add_function(const std::string& target_name, const std::string& file, const ElfSymbol& rs,
                    int64_t addend) {
    if (!defined_here(rs)) fail("{}: replacement `{}' is not defined in the patch", obj_.name, rs.name);
    const ElfSymbol& repl = replacement_symbol(rs, addend);
    const ElfFile& target_ = *this->target_;
    const ElfSymbol& fn = symbols_->function(target_name, file);
    for (const auto& f : patch_.functions)
      if (f.address == fn.value)
        fail("{}: function `{}' is replaced twice", obj_.name, target_name);
    Bytes code = target_.read_vaddr(fn.value, fn.size);
    uint64_t site = arch::patch_site_offset(code);
    if (fn.size < site + arch::kRedirectSize)
      fail("{}: function `{}' is {} bytes, too short for a {}-byte jump", target_.name(),
           target_name, fn.size, site + arch::kRedirectSize);
    FunctionReplacement f;
    f.symbol = fn.name;
    f.demangled = demangle(fn.name);
    f.file = fn.bind == STB_LOCAL ? fn.file : "";
    f.address = fn.value;
    f.size = fn.size;
    f.sha256 = sha256_hex(code);
    for (const ElfSymbol* c : symbols_->cold_parts(fn)) f.cold_parts.push_back({c->value, c->size});
    f.replacement = repl.name;
    f.replacement_offset = symbol_offset(repl, 0);
    f.replacement_size = repl.size;
    for (const auto& t : obj_.entry_thunks)
      if (t.function == fn.value) {
        const ElfSymbol& ts = sym(t.symbol);
        f.thunk = FunctionReplacement::Thunk{symbol_offset(ts, 0), ts.size, t.preserved, t.stack_argument_bytes};
      }
    patch_.functions.push_back(std::move(f));
  }

  const RelocatableObject& obj_;
  const ElfFile* target_ = nullptr;
  std::string target_path_;
  std::optional<TargetSymbols> symbols_;
  Patch patch_;

  std::map<size_t, Placement> placed_;
  const ElfSection* eh_frame_ = nullptr;
  std::optional<uint64_t> unwind_object_;  // offset in bss
  std::vector<FdeRef> fdes_;
  uint64_t part_size_[kParts] = {};
  uint64_t part_base_[kParts] = {};
  std::map<uint64_t, std::pair<uint32_t, int64_t>> replacement_fields_;  // record -> symbol, addend
  std::map<std::string, std::string> resolve_hints_;
  std::map<std::pair<std::string, std::string>, int64_t> external_index_;
  std::map<std::string, uint64_t> slots_;
  std::vector<std::pair<uint32_t, int64_t>> slot_symbol_;
  uint64_t slot_count_ = 0, slots_offset_ = 0;
  std::map<int64_t, uint64_t> stubs_;
  uint64_t stub_count_ = 0, stubs_offset_ = 0;
};

}  // namespace

Patch link_patch_object(const RelocatableObject& object, const ElfFile& target,
                        const std::string& target_path, const std::string& name) {
  Patch patch = ObjectLinker(object, target, target_path).link(name);
  // A test knob: GRAFT_ENTRY_THUNKS=off builds what graft built before it had
  // thunks, to show what they prevent.
  const char* knob = std::getenv("GRAFT_ENTRY_THUNKS");
  RegisterContract contract = check_register_contract(target, patch, !(knob && std::string(knob) == "off"));
  if (!contract.thunks.empty()) {
    RelocatableObject with_thunks = object;
    add_entry_thunks(with_thunks, patch, contract.thunks);
    patch = ObjectLinker(with_thunks, target, target_path).link(name);
  }
  patch.warnings = std::move(contract.warnings);
  for (auto& t : contract.thunks) patch.notes.push_back(std::move(t.note));
  return patch;
}

LinkedRuntime link_runtime_object(const ElfFile& object) {
  if (object.type() != ET_REL) fail("{}: not a relocatable object", object.name());
  RelocatableObject relocatable = read_relocatable(object);
  ObjectLinker linker(relocatable);
  LinkedRuntime rt;
  rt.image = linker.link("graft-rt");
  rt.exports = linker.exports();
  if (rt.exports.empty()) fail("{}: exports no function", object.name());
  return rt;
}

}  // namespace graft
