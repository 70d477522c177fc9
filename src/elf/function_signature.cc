#include "elf/function_signature.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/unique_resource.h"

namespace graft {

namespace {

std::optional<Dwarf_Die> ref(Dwarf_Die* die, unsigned attribute) {
  Dwarf_Attribute attr;
  Dwarf_Die out;
  if (!dwarf_attr_integrate(die, attribute, &attr) || !dwarf_formref_die(&attr, &out)) return std::nullopt;
  return out;
}

ValueType value_type(Dwarf_Die* typed) {
  auto t = ref(typed, DW_AT_type);
  if (!t) return {};  // no type: void
  // Qualifiers and typedefs change nothing about how a value is passed.
  for (int depth = 0; depth < 64; ++depth) {
    int tag = dwarf_tag(&*t);
    if (tag != DW_TAG_typedef && tag != DW_TAG_const_type && tag != DW_TAG_volatile_type &&
        tag != DW_TAG_restrict_type && tag != DW_TAG_atomic_type)
      break;
    t = ref(&*t, DW_AT_type);
    if (!t) return {ValueType::Kind::Other, 0, "void"};  // `const void' is not a parameter type
  }
  ValueType v;
  const char* name = dwarf_diename(&*t);
  v.name = name ? name : "";
  Dwarf_Word size = 0;
  if (dwarf_aggregate_size(&*t, &size) == 0) v.size = size;
  switch (dwarf_tag(&*t)) {
    case DW_TAG_base_type: {
      Dwarf_Attribute a;
      Dwarf_Word enc = 0;
      if (dwarf_attr(&*t, DW_AT_encoding, &a)) dwarf_formudata(&a, &enc);
      if (enc == DW_ATE_float) v.kind = ValueType::Kind::Float;
      else if (enc == DW_ATE_signed || enc == DW_ATE_unsigned || enc == DW_ATE_signed_char ||
               enc == DW_ATE_unsigned_char || enc == DW_ATE_boolean || enc == DW_ATE_UTF)
        v.kind = ValueType::Kind::Integer;
      else
        v.kind = ValueType::Kind::Other;
      break;
    }
    case DW_TAG_pointer_type:
    case DW_TAG_reference_type:
    case DW_TAG_rvalue_reference_type:
      v.kind = ValueType::Kind::Integer;
      if (v.size == 0) v.size = 8;
      if (v.name.empty()) v.name = "pointer";
      break;
    case DW_TAG_enumeration_type:
    case DW_TAG_unspecified_type:  // std::nullptr_t
      v.kind = ValueType::Kind::Integer;
      if (v.size == 0) v.size = 8;
      break;
    case DW_TAG_structure_type:
    case DW_TAG_class_type:
    case DW_TAG_union_type:
    case DW_TAG_array_type:
      v.kind = ValueType::Kind::Aggregate;
      break;
    default:
      v.kind = ValueType::Kind::Other;
  }
  if (v.size == 0 && v.kind != ValueType::Kind::Void) v.kind = ValueType::Kind::Other;
  return v;
}

// Reads the parameters listed under `die`; false if it lists none (neither
// a parameter nor `...').
bool read_parameters(Dwarf_Die* die, FunctionSignature& s) {
  Dwarf_Die child;
  if (dwarf_child(die, &child) != 0) return false;
  bool any = false;
  do {
    int tag = dwarf_tag(&child);
    if (tag == DW_TAG_formal_parameter) {
      s.parameters.push_back(value_type(&child));
      any = true;
    } else if (tag == DW_TAG_unspecified_parameters) {
      s.variadic = any = true;
    }
  } while (dwarf_siblingof(&child, &child) == 0);
  return any;
}

FunctionSignature signature_of(Dwarf_Die* fn) {
  FunctionSignature s;
  s.returns = value_type(fn);
  // The concrete instance lists the parameters (each with its own
  // abstract_origin); a declaration it refers to lists them as well (C++
  // methods, functions also inlined elsewhere), the one place `...' may be.
  Dwarf_Die d = *fn;
  for (int depth = 0; depth < 8; ++depth) {
    FunctionSignature here;
    if (read_parameters(&d, here)) {
      if (s.parameters.empty()) s.parameters = here.parameters;
      s.variadic |= here.variadic;
    }
    auto next = ref(&d, DW_AT_abstract_origin);
    if (!next) next = ref(&d, DW_AT_specification);
    if (!next) break;
    d = *next;
  }
  return s;
}

// The unit covering `address`: through .debug_aranges, or by each unit's
// ranges where the compiler wrote no .debug_aranges.
bool unit_at(Dwarf* dw, uint64_t address, Dwarf_Die* cu) {
  if (dwarf_addrdie(dw, address, cu)) return true;
  Dwarf_Off off = 0, next;
  size_t header_size;
  while (dwarf_nextcu(dw, off, &next, &header_size, nullptr, nullptr, nullptr) == 0) {
    if (dwarf_offdie(dw, off + header_size, cu) && dwarf_haspc(cu, address) == 1) return true;
    off = next;
  }
  return false;
}

std::optional<FunctionSignature> find(Dwarf* dw, uint64_t address) {
  Dwarf_Die cu;
  if (!unit_at(dw, address, &cu)) return std::nullopt;
  Dwarf_Die* scopes = nullptr;
  int n = dwarf_getscopes(&cu, address, &scopes);
  std::optional<FunctionSignature> out;
  for (int i = 0; i < n && !out; ++i) {
    Dwarf_Addr low;
    if (dwarf_tag(&scopes[i]) == DW_TAG_subprogram && dwarf_lowpc(&scopes[i], &low) == 0 && low == address)
      out = signature_of(&scopes[i]);
  }
  free(scopes);
  return out;
}

bool same_value(const ValueType& a, const ValueType& b) { return a.kind == b.kind && a.size == b.size; }

bool same_signature(const FunctionSignature& a, const FunctionSignature& b) {
  return same_value(a.returns, b.returns) && a.variadic == b.variadic &&
         std::equal(a.parameters.begin(), a.parameters.end(), b.parameters.begin(), b.parameters.end(),
                    same_value);
}

bool has_flag(Dwarf_Die* die, unsigned attribute) {
  Dwarf_Attribute attr;
  bool flag = false;
  return dwarf_attr(die, attribute, &attr) && dwarf_formflag(&attr, &flag) == 0 && flag;
}

// The definitions (not declarations) of functions named `name' among the
// children of `parent', namespaces included.
void named_definitions(Dwarf_Die* parent, const std::string& name, std::vector<FunctionSignature>& out) {
  Dwarf_Die child;
  if (dwarf_child(parent, &child) != 0) return;
  do {
    int tag = dwarf_tag(&child);
    if (tag == DW_TAG_namespace) {
      named_definitions(&child, name, out);
    } else if (tag == DW_TAG_subprogram && !has_flag(&child, DW_AT_declaration)) {
      Dwarf_Attribute attr;
      const char* linkage = nullptr;
      if (dwarf_attr_integrate(&child, DW_AT_linkage_name, &attr)) linkage = dwarf_formstring(&attr);
      const char* plain = dwarf_diename(&child);
      if (linkage ? name == linkage : plain && name == plain) out.push_back(signature_of(&child));
    }
  } while (dwarf_siblingof(&child, &child) == 0);
}

std::optional<FunctionSignature> find_by_name(Dwarf* dw, const std::string& name) {
  std::vector<FunctionSignature> found;
  Dwarf_Off off = 0, next;
  size_t header_size;
  while (dwarf_nextcu(dw, off, &next, &header_size, nullptr, nullptr, nullptr) == 0) {
    Dwarf_Die cu;
    if (dwarf_offdie(dw, off + header_size, &cu)) named_definitions(&cu, name, found);
    off = next;
  }
  if (found.empty()) return std::nullopt;
  for (const auto& s : found)
    if (!same_signature(s, found.front())) return std::nullopt;
  return found.front();
}

}  // namespace

std::optional<FunctionSignature> function_signature(const std::string& path, uint64_t address,
                                                    const std::string& name) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  UniqueHandle<Dwarf, dwarf_end> dw(dwarf_begin(fd.get(), DWARF_C_READ));
  if (!dw) return std::nullopt;
  std::optional<FunctionSignature> out = find(dw.get(), address);
  if (!out && !name.empty()) out = find_by_name(dw.get(), name);
  return out;
}

}  // namespace graft
