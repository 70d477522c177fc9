#include "differ/dwarf_facts.h"
#include "common/unique_resource.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fmt/format.h>

#include <gelf.h>

#include <functional>

namespace graft {

namespace {

std::string attr_string(Dwarf_Die* die, int attr) {
  Dwarf_Attribute a;
  const char* s = dwarf_formstring(dwarf_attr_integrate(die, attr, &a));
  return s ? s : "";
}

bool has_code(Dwarf_Die* die) {
  Dwarf_Attribute a;
  return dwarf_attr(die, DW_AT_low_pc, &a) || dwarf_attr(die, DW_AT_ranges, &a);
}

DeclaredFunction declared(Dwarf_Die* die) {
  DeclaredFunction f;
  f.name = attr_string(die, DW_AT_name);
  f.linkage_name = attr_string(die, DW_AT_linkage_name);
  if (const char* file = dwarf_decl_file(die)) f.file = file;
  dwarf_decl_line(die, &f.line);
  return f;
}

uint64_t type_size(Dwarf_Die* type) {
  Dwarf_Word size = 0;
  return dwarf_aggregate_size(type, &size) == 0 ? size : 0;
}

void record_type(Dwarf_Die* die, const std::string& name, const char* kind,
                 std::map<std::string, TypeLayout>& types) {
  Dwarf_Attribute a;
  if (dwarf_attr(die, DW_AT_declaration, &a)) return;
  TypeLayout t;
  t.kind = kind;
  t.name = name;
  t.size = type_size(die);
  Dwarf_Die child;
  if (dwarf_child(die, &child) == 0) do {
      if (dwarf_tag(&child) != DW_TAG_member) continue;
      Dwarf_Word offset = 0;
      Dwarf_Attribute loc;
      if (dwarf_attr(&child, DW_AT_data_member_location, &loc)) dwarf_formudata(&loc, &offset);
      Dwarf_Die mtype;
      uint64_t size = 0;
      if (dwarf_attr(&child, DW_AT_type, &loc) && dwarf_formref_die(&loc, &mtype)) size = type_size(&mtype);
      const char* mn = dwarf_diename(&child);
      t.members.push_back({mn ? mn : "<anonymous>", {offset, size}});
    } while (dwarf_siblingof(&child, &child) == 0);
  types.emplace(std::string(kind) + " " + name, std::move(t));
}

}  // namespace

DwarfFacts::DwarfFacts(const std::string& path) {
  static const Dwfl_Callbacks callbacks = {
      .find_elf = dwfl_build_id_find_elf,
      .find_debuginfo = dwfl_standard_find_debuginfo,
      .section_address = dwfl_offline_section_address,
      .debuginfo_path = nullptr,
  };
  UniqueHandle<Dwfl, dwfl_end> owner(dwfl_begin(&callbacks));
  Dwfl* dwfl = owner.get();
  if (!dwfl) return;
  Dwfl_Module* mod = dwfl_report_offline(dwfl, "", path.c_str(), -1);
  dwfl_report_end(dwfl, nullptr, nullptr);
  Dwarf_Addr bias = 0;
  Dwarf* dw = mod ? dwfl_module_getdwarf(mod, &bias) : nullptr;
  if (!dw) {
    return;
  }
  struct Range {
    Dwarf_Addr start, end, function;
  };
  std::vector<Range> ranges;  // of the functions of the current unit
  // The inlined calls under a function's concrete DIE.
  std::function<void(Dwarf_Die*, std::vector<DeclaredFunction>&)> collect_inlined =
      [&](Dwarf_Die* die, std::vector<DeclaredFunction>& out) {
        Dwarf_Die child;
        if (dwarf_child(die, &child) != 0) return;
        do {
          if (dwarf_tag(&child) == DW_TAG_inlined_subroutine) out.push_back(declared(&child));
          collect_inlined(&child, out);
        } while (dwarf_siblingof(&child, &child) == 0);
      };
  std::function<void(Dwarf_Die*)> walk = [&](Dwarf_Die* die) {
    Dwarf_Die child;
    if (dwarf_child(die, &child) != 0) return;
    do {
      int tag = dwarf_tag(&child);
      if (tag == DW_TAG_subprogram) {
        Dwarf_Attribute a;
        DeclaredFunction f = declared(&child);
        if (!dwarf_attr(&child, DW_AT_declaration, &a) && !f.name.empty() && f.line > 0 &&
            !dwarf_attr(&child, DW_AT_abstract_origin, &a) && !dwarf_attr(&child, DW_AT_specification, &a))
          functions_.push_back(f);
        else if (dwarf_attr(&child, DW_AT_specification, &a) && f.line > 0)
          functions_.push_back(f);  // a C++ member function defined out of its class
        Dwarf_Addr low = 0;
        if (has_code(&child) && dwarf_lowpc(&child, &low) == 0) {
          Concrete& c = concrete_[low];
          c.self = f;
          collect_inlined(&child, c.inlined);
          Dwarf_Addr base, start, end;
          ptrdiff_t off = 0;
          while ((off = dwarf_ranges(&child, off, &base, &start, &end)) > 0) ranges.push_back({start, end, low});
        }
      } else if (tag == DW_TAG_structure_type || tag == DW_TAG_union_type || tag == DW_TAG_class_type) {
        const char* n = dwarf_diename(&child);
        if (n) record_type(&child, n, tag == DW_TAG_union_type ? "union" : tag == DW_TAG_class_type ? "class" : "struct", types_);
      } else if (tag == DW_TAG_typedef) {
        // typedef struct { ... } name_t;
        Dwarf_Attribute a;
        Dwarf_Die t;
        const char* n = dwarf_diename(&child);
        if (n && dwarf_attr(&child, DW_AT_type, &a) && dwarf_formref_die(&a, &t) && !dwarf_diename(&t)) {
          int tt = dwarf_tag(&t);
          if (tt == DW_TAG_structure_type || tt == DW_TAG_union_type || tt == DW_TAG_class_type)
            record_type(&t, n, "typedef", types_);
        }
      }
      if (tag == DW_TAG_namespace || tag == DW_TAG_structure_type || tag == DW_TAG_class_type ||
          tag == DW_TAG_subprogram || tag == DW_TAG_lexical_block)
        walk(&child);
    } while (dwarf_siblingof(&child, &child) == 0);
  };
  Dwarf_Die* cu = nullptr;
  while ((cu = dwfl_module_nextcu(mod, cu, &bias))) {
    ranges.clear();
    walk(cu);
    // Which function's code each line-table row belongs to.
    Dwarf_Lines* lines = nullptr;
    size_t n = 0;
    if (dwarf_getsrclines(cu, &lines, &n) != 0) continue;
    for (size_t i = 0; i < n; ++i) {
      Dwarf_Line* line = dwarf_onesrcline(lines, i);
      Dwarf_Addr addr;
      int lineno;
      const char* file = dwarf_linesrc(line, nullptr, nullptr);
      if (!line || dwarf_lineaddr(line, &addr) != 0 || dwarf_lineno(line, &lineno) != 0 || !file || lineno <= 0)
        continue;
      for (const auto& r : ranges)
        if (addr >= r.start && addr < r.end) concrete_[r.function].lines.push_back({file, lineno});
    }
  }
  int count = dwfl_module_getsymtab(mod);
  for (int i = 1; i < count; ++i) {
    GElf_Sym sym;
    GElf_Addr addr = 0;
    const char* name = dwfl_module_getsym_info(mod, i, &sym, &addr, nullptr, nullptr, nullptr);
    if (name && GELF_ST_TYPE(sym.st_info) == STT_FUNC && sym.st_shndx != SHN_UNDEF) symbol_address_[name] = addr;
  }
}

const DwarfFacts::Concrete* DwarfFacts::concrete(const std::string& symbol) const {
  auto a = symbol_address_.find(symbol);
  if (a == symbol_address_.end()) return nullptr;
  auto c = concrete_.find(a->second);
  return c == concrete_.end() ? nullptr : &c->second;
}

std::vector<DeclaredFunction> DwarfFacts::inlined_into(const std::string& symbol) const {
  const Concrete* c = concrete(symbol);
  return c ? c->inlined : std::vector<DeclaredFunction>{};
}

const DeclaredFunction* DwarfFacts::declaration_of(const std::string& symbol) const {
  const Concrete* c = concrete(symbol);
  return c && c->self.line > 0 ? &c->self : nullptr;
}

std::vector<std::pair<std::string, int>> DwarfFacts::code_lines(const std::string& symbol) const {
  const Concrete* c = concrete(symbol);
  return c ? c->lines : std::vector<std::pair<std::string, int>>{};
}

std::string layout_difference(const TypeLayout& a, const TypeLayout& b) {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (a.size != b.size) add(fmt::format("size {} -> {} bytes", a.size, b.size));
  std::map<std::string, std::pair<uint64_t, uint64_t>> before(a.members.begin(), a.members.end());
  std::map<std::string, std::pair<uint64_t, uint64_t>> after(b.members.begin(), b.members.end());
  for (const auto& [name, where] : after) {
    auto it = before.find(name);
    if (it == before.end()) add(fmt::format("member `{}' added at +{}", name, where.first));
    else if (it->second.first != where.first) add(fmt::format("member `{}' moved from +{} to +{}", name, it->second.first, where.first));
    else if (it->second.second != where.second)
      add(fmt::format("member `{}' changes size from {} to {}", name, it->second.second, where.second));
  }
  for (const auto& [name, where] : before)
    if (!after.count(name)) add(fmt::format("member `{}' (at +{}) removed", name, where.first));
  return out;
}

}  // namespace graft

namespace graft {

std::map<std::string, std::string> layout_changes(const DwarfFacts& before, const DwarfFacts& after) {
  std::map<std::string, std::string> out;
  for (const auto& [key, layout] : before.types()) {
    auto it = after.types().find(key);
    if (it == after.types().end()) continue;
    std::string d = layout_difference(layout, it->second);
    if (!d.empty()) out[key] = d;
  }
  return out;
}

}  // namespace graft
