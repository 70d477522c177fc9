// What the DWARF of one compiled object says that the differ uses: where
// each function is declared, which functions were inlined into it, and the
// layout of each struct, union and class. The DWARF of a relocatable object
// must be relocated before it can be read; libdwfl does that.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace graft {

struct DeclaredFunction {
  std::string name;  // DW_AT_name
  std::string linkage_name;
  std::string file;  // DW_AT_decl_file, as recorded
  int line = 0;
};

struct TypeLayout {
  std::string kind;  // struct, union, class
  std::string name;
  uint64_t size = 0;
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> members;  // name -> (offset, size)
};

class DwarfFacts {
 public:
  // No DWARF (or unreadable DWARF): empty facts.
  explicit DwarfFacts(const std::string& object_path);

  bool empty() const { return functions_.empty(); }
  // Declared (defined) functions of every file, in no order.
  const std::vector<DeclaredFunction>& functions() const { return functions_; }
  // For the function at symbol `symbol' (found by its address): the
  // functions inlined into it, its declaration, and every source line its
  // code comes from (file, line), inlined code included.
  std::vector<DeclaredFunction> inlined_into(const std::string& symbol) const;
  const DeclaredFunction* declaration_of(const std::string& symbol) const;
  std::vector<std::pair<std::string, int>> code_lines(const std::string& symbol) const;
  const std::map<std::string, TypeLayout>& types() const { return types_; }

 private:
  struct Concrete {
    DeclaredFunction self;
    std::vector<DeclaredFunction> inlined;
    std::vector<std::pair<std::string, int>> lines;
  };
  const Concrete* concrete(const std::string& symbol) const;

  std::vector<DeclaredFunction> functions_;
  std::map<std::string, uint64_t> symbol_address_;  // functions, as laid out by libdwfl
  std::map<uint64_t, Concrete> concrete_;           // by entry address
  std::map<std::string, TypeLayout> types_;                        // "struct item" -> layout
};

// A layout difference in words ("size 8 -> 12; member `price' added at +8"),
// "" if none.
std::string layout_difference(const TypeLayout& before, const TypeLayout& after);

// The types both builds of a unit define whose layout differs: "struct x"
// -> the difference in words.
std::map<std::string, std::string> layout_changes(const DwarfFacts& before, const DwarfFacts& after);

}  // namespace graft
