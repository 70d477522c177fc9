#include "differ/dwarf_facts.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fmt/format.h>

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

std::string base_symbol(const std::string& symbol) {
  auto dot = symbol.find('.');
  return dot == std::string::npos ? symbol : symbol.substr(0, dot);
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
  Dwfl* dwfl = dwfl_begin(&callbacks);
  if (!dwfl) return;
  Dwfl_Module* mod = dwfl_report_offline(dwfl, "", path.c_str(), -1);
  dwfl_report_end(dwfl, nullptr, nullptr);
  Dwarf_Addr bias = 0;
  Dwarf* dw = mod ? dwfl_module_getdwarf(mod, &bias) : nullptr;
  if (!dw) {
    dwfl_end(dwfl);
    return;
  }
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
        if (has_code(&child)) {
          std::vector<DeclaredFunction> in;
          collect_inlined(&child, in);
          if (!f.name.empty()) {
            auto& v = inlined_[f.name];
            v.insert(v.end(), in.begin(), in.end());
          }
          if (!f.linkage_name.empty()) {
            auto& v = inlined_[f.linkage_name];
            v.insert(v.end(), in.begin(), in.end());
          }
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
  while ((cu = dwfl_module_nextcu(mod, cu, &bias))) walk(cu);
  dwfl_end(dwfl);
}

std::vector<DeclaredFunction> DwarfFacts::inlined_into(const std::string& symbol) const {
  auto it = inlined_.find(base_symbol(symbol));
  return it == inlined_.end() ? std::vector<DeclaredFunction>{} : it->second;
}

const DeclaredFunction* DwarfFacts::declaration_of(const std::string& symbol) const {
  std::string base = base_symbol(symbol);
  for (const auto& f : functions_)
    if (f.linkage_name == base) return &f;
  for (const auto& f : functions_)
    if (f.name == base && f.linkage_name.empty()) return &f;
  return nullptr;
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
