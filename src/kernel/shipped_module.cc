#include "kernel/shipped_module.h"

#include <elf.h>

#include <algorithm>
#include <cstring>

#include "arch/x86_64/instruction.h"
#include "arch/x86_64/relocation.h"
#include "common/error.h"

namespace graft::kernel {

namespace {

// Where the layout starts, and where undefined symbols go: both below
// 2 GiB, so that sign-extended 32-bit fields (-mcmodel=kernel) hold them.
constexpr uint64_t kLayoutBase = 0x1000000;
constexpr uint64_t kUndefinedBase = 0x70000000;

bool starts_with(const std::string& s, const char* head) { return s.rfind(head, 0) == 0; }

uint64_t align_up(uint64_t v, uint64_t a) { return a > 1 ? (v + a - 1) / a * a : v; }

}  // namespace

ShippedModule::ShippedModule(const std::string& path, std::string name)
    : path_(path), name_(std::move(name)), elf_(path, "module " + name_ + " (" + path + ")") {
  if (elf_.type() != ET_REL) fail("{}: not a kernel module (not a relocatable object)", path_);
  if (!elf_.has_symtab()) fail("{}: no symbol table (stripped): graft cannot find the module's functions", path_);
  lay_out();
  load_patch_sites();
}

const ElfSection& ShippedModule::section(size_t index) const {
  // ElfFile lists sections from index 1 (no null section), in order.
  const auto& sections = elf_.sections();
  if (index == 0 || index > sections.size() || sections[index - 1].index != index)
    fail("{}: no section {}", path_, index);
  return sections[index - 1];
}

void ShippedModule::lay_out() {
  const auto& sections = elf_.sections();
  size_t count = sections.size() + 1;  // section indexes, the null section included
  section_address_.assign(count, 0);
  relocated_.assign(count, {});
  uint64_t cursor = kLayoutBase;
  for (const auto& s : sections) {
    if (!(s.flags & SHF_ALLOC) || s.size == 0) continue;
    if (s.size > (uint64_t(64) << 20)) fail("{}: section {} is {} bytes", path_, s.name, s.size);
    cursor = align_up(cursor, std::max<uint64_t>(s.align, 16));
    section_address_[s.index] = cursor;
    Bytes bytes = s.type == SHT_NOBITS ? Bytes(s.size, 0) : elf_.section_data(s.index);
    if (bytes.size() != s.size) fail("{}: section {} holds {} of its {} bytes", path_, s.name, bytes.size(), s.size);
    image_.emplace(cursor, std::move(bytes));
    cursor += s.size;
  }
  if (cursor >= kUndefinedBase) fail("{}: too large to lay out", path_);
  const auto& syms = elf_.symbols();
  undefined_address_.assign(syms.size(), 0);
  for (size_t i = 1; i < syms.size(); ++i) {
    const ElfSymbol& s = syms[i];
    if (!s.defined()) {
      undefined_address_[i] = kUndefinedBase + 16 * i;
      continue;
    }
    if (s.name.empty() || s.shndx >= count || !section_address_[s.shndx]) continue;
    uint64_t a = address_of(i);
    by_address_[a].push_back(i);
    if (s.type == STT_FUNC) functions_[a].push_back(i);
  }
  for (const auto& rs : sections) {
    if (rs.type != SHT_RELA || rs.info >= count || !section_address_[rs.info]) continue;
    const ElfSection& target = section(rs.info);
    Bytes& bytes = image_.at(section_address_[rs.info]);
    for (const ElfRela& r : elf_.relocations(rs)) {
      if (r.type == R_X86_64_NONE) continue;
      if (r.symbol >= syms.size()) fail("{}: relocation at {}+{:#x} names symbol {}", path_, target.name, r.offset, r.symbol);
      uint64_t s = address_of(r.symbol), p = section_address_[rs.info] + r.offset;
      uint64_t v = s + uint64_t(r.addend);
      size_t width;
      switch (r.type) {
        case R_X86_64_64: width = 8; break;
        case R_X86_64_PC64: width = 8, v -= p; break;
        case R_X86_64_PC32:
        case R_X86_64_PLT32: width = 4, v -= p; break;
        case R_X86_64_32:
        case R_X86_64_32S: width = 4; break;
        default:
          fail("{}: relocation type {} at {}+{:#x}: not one the module loader applies on x86-64", path_, r.type,
               target.name, r.offset);
      }
      if (r.offset + width > bytes.size())
        fail("{}: relocation at {}+{:#x} outside the section", path_, target.name, r.offset);
      std::memcpy(bytes.data() + r.offset, &v, width);
      relocated_[rs.info].emplace_back(uint32_t(r.offset), uint32_t(width));
    }
  }
}

uint64_t ShippedModule::address_of(size_t i) const {
  const ElfSymbol& s = elf_.symbols().at(i);
  if (!s.defined()) return undefined_address_.at(i);
  if (s.shndx == SHN_ABS) return s.value;
  if (s.shndx >= section_address_.size() || !section_address_[s.shndx]) return 0;
  return section_address_[s.shndx] + s.value;
}

// The kernel's tables of code it rewrites at load and run time, in the
// module's own sections: each entry starts with the code's address,
// relative to the entry (struct alt_instr, jump_entry, static_call_site,
// the thunk and lock lists) or absolute (paravirt_patch_site).
void ShippedModule::load_patch_sites() {
  struct Table {
    const char* section;
    size_t entry;
    const char* reason;
    int length_at;  // byte holding the site's length, -1: one instruction, -2: one byte
    bool absolute;
  };
  static const Table tables[] = {
      {".altinstructions", 12, "alternative", 10, false},
      {".retpoline_sites", 4, "retpoline thunk", -1, false},
      {".return_sites", 4, "return thunk", -1, false},
      {"__jump_table", 16, "jump label", -1, false},
      {".static_call_sites", 8, "static call", -1, false},
      {".smp_locks", 4, "lock prefix", -2, false},
      {".parainstructions", 16, "paravirt", 9, true},
  };
  auto read_at = [&](uint64_t address, size_t n) -> const uint8_t* {
    auto it = image_.upper_bound(address);
    if (it == image_.begin()) return nullptr;
    --it;
    if (address + n > it->first + it->second.size()) return nullptr;
    return it->second.data() + (address - it->first);
  };
  for (const Table& t : tables) {
    const ElfSection* s = elf_.section(t.section);
    if (!s || !section_address_[s->index]) continue;
    uint64_t base = section_address_[s->index];
    const Bytes& table = image_.at(base);
    for (size_t i = 0; i + t.entry <= table.size(); i += t.entry) {
      uint64_t site;
      if (t.absolute) {
        std::memcpy(&site, table.data() + i, 8);
      } else {
        int32_t rel;
        std::memcpy(&rel, table.data() + i, 4);
        site = base + i + uint64_t(int64_t(rel));
      }
      uint32_t length = t.length_at >= 0 ? table[i + size_t(t.length_at)] : t.length_at == -2 ? 1 : 0;
      if (length == 0) {
        const uint8_t* code = read_at(site, 1);
        auto it = image_.upper_bound(site);
        size_t avail = it == image_.begin() ? 0 : std::prev(it)->first + std::prev(it)->second.size() - site;
        auto ins = code ? arch::decode_instruction({code, std::min<size_t>(avail, 15)}, site) : std::nullopt;
        length = ins ? ins->length : 6;  // the longest form a site takes (a 6-byte jcc)
      }
      patch_sites_.emplace_back(site, length, t.reason);
    }
  }
  std::sort(patch_sites_.begin(), patch_sites_.end());
  if (const ElfSection* s = elf_.section("__mcount_loc"); s && section_address_[s->index]) {
    const Bytes& table = image_.at(section_address_[s->index]);
    for (size_t i = 0; i + 8 <= table.size(); i += 8) {
      uint64_t site;
      std::memcpy(&site, table.data() + i, 8);
      ftrace_sites_.insert(site);
    }
  }
}

std::vector<size_t> ShippedModule::named(const std::string& name) const {
  std::vector<size_t> out;
  const auto& syms = elf_.symbols();
  for (size_t i = 1; i < syms.size(); ++i)
    if (syms[i].defined() && syms[i].name == name && syms[i].shndx < section_address_.size() &&
        section_address_[syms[i].shndx])
      out.push_back(i);
  return out;
}

unsigned ShippedModule::position_of(size_t symbol) const {
  auto all = named(elf_.symbols().at(symbol).name);
  if (all.size() <= 1) return 0;
  return unsigned(std::find(all.begin(), all.end(), symbol) - all.begin() + 1);
}

RunningFunction ShippedModule::code(size_t symbol) const {
  const ElfSymbol& s = elf_.symbols().at(symbol);
  uint64_t a = address_of(symbol);
  const Bytes& section = image_.at(section_address_.at(s.shndx));
  if (s.value + s.size > section.size()) fail("{}: symbol {} extends past its section", path_, s.name);
  return {a, Bytes(section.begin() + long(s.value), section.begin() + long(s.value + s.size)), false};
}

std::string ShippedModule::function_at(uint64_t address, int64_t* offset, const std::string& wanted) const {
  auto it = functions_.upper_bound(address);
  if (it == functions_.begin()) return "";
  --it;
  const auto& syms = elf_.symbols();
  uint64_t size = 1;
  for (size_t i : it->second) size = std::max(size, syms[i].size);
  if (address - it->first >= size) return "";
  *offset = int64_t(address - it->first);
  for (size_t i : it->second)
    if (syms[i].name == wanted) return wanted;
  return syms[it->second.front()].name;
}

size_t ShippedModule::symbol_holding(uint64_t address) const {
  auto it = by_address_.upper_bound(address);
  while (it != by_address_.begin()) {
    --it;
    for (size_t i : it->second) {
      const ElfSymbol& s = elf_.symbols()[i];
      if (s.type == STT_SECTION || s.type == STT_FILE) continue;
      if (address - it->first < std::max<uint64_t>(s.size, 1)) return i;
    }
    if (address - it->first > (uint64_t(1) << 24)) break;
  }
  return npos;
}

size_t ShippedModule::resolve(const std::string& name, unsigned pos) const {
  auto all = named(name);
  if (all.empty()) fail("symbol {} is not in module {} ({})", name, name_, path_);
  if (pos == 0 && all.size() > 1)
    fail("symbol {} is defined {} times in module {}: name its position", name, all.size(), name_);
  if (pos > all.size()) fail("symbol {},{}: module {} defines it only {} time(s)", name, pos, name_, all.size());
  return all[pos ? pos - 1 : 0];
}

Bytes ShippedModule::file_bytes(const std::string& name, unsigned pos) const {
  const ElfSymbol& s = elf_.symbols()[resolve(name, pos)];
  Bytes section = elf_.section_data(s.shndx);
  if (s.value + s.size > section.size()) fail("{}: symbol {} extends past its section", path_, name);
  return Bytes(section.begin() + long(s.value), section.begin() + long(s.value + s.size));
}

FunctionFingerprint ShippedModule::patchable_function(const std::string& name, unsigned pos) const {
  size_t i = resolve(name, pos);
  const ElfSymbol& s = elf_.symbols()[i];
  const ElfSection& sec = section(s.shndx);
  if (s.type != STT_FUNC || !(sec.flags & SHF_EXECINSTR))
    fail("cannot patch {} of module {}: it is not a function", name, name_);
  if (starts_with(sec.name, ".init") || starts_with(sec.name, ".exit"))
    fail("cannot patch {} of module {}: it is {} code, freed or never kept after loading", name, name_,
         starts_with(sec.name, ".init") ? "__init" : "__exit");
  uint64_t a = address_of(i);
  if (!ftrace_sites_.count(a))
    fail("cannot patch {} of module {}: it has no __fentry__ call at its entry (notrace, or not traceable), "
         "so livepatch cannot redirect it",
         name, name_);
  if (s.size == 0 || s.size > (1u << 20)) fail("cannot check {} of module {}: its size is {}", name, name_, s.size);
  FunctionFingerprint f;
  f.object = name_;
  f.name = name;
  f.sympos = pos;
  f.address = s.value;
  f.size = s.size;
  f.bytes = file_bytes(name, pos);
  // The loader fills every relocated field with the module's addresses.
  f.masked.push_back({0, 5, "ftrace"});
  for (auto [off, width] : relocated_[s.shndx])
    if (off >= s.value && off + width <= s.value + s.size) f.masked.push_back({uint32_t(off - s.value), width, "relocation"});
  auto lo = std::lower_bound(patch_sites_.begin(), patch_sites_.end(), std::make_tuple(a, uint32_t(0), std::string()));
  for (auto it = lo; it != patch_sites_.end() && std::get<0>(*it) < a + s.size; ++it) {
    uint64_t off = std::get<0>(*it) - a;
    uint32_t len = uint32_t(std::min<uint64_t>(std::get<1>(*it), s.size - off));
    f.masked.push_back({uint32_t(off), len, std::get<2>(*it)});
  }
  return f;
}

}  // namespace graft::kernel
