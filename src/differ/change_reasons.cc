#include "differ/change_reasons.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>

namespace graft {

namespace {

// The diff's file for a DWARF file name (relative to the build directory,
// or absolute): the one whose path ends the name.
const DiffFile* diff_file(const std::vector<DiffFile>& diff, const std::string& dwarf_file) {
  for (const auto& f : diff) {
    if (dwarf_file == f.path) return &f;
    if (dwarf_file.size() > f.path.size() &&
        dwarf_file.compare(dwarf_file.size() - f.path.size(), f.path.size(), f.path) == 0 &&
        dwarf_file[dwarf_file.size() - f.path.size() - 1] == '/')
      return &f;
  }
  return nullptr;
}

// The source span of a function: from its declaration to the next function
// declared in the same file.
std::pair<int, int> span(const DeclaredFunction& fn, const DwarfFacts& facts) {
  int end = INT_MAX;
  for (const auto& other : facts.functions())
    if (other.file == fn.file && other.line > fn.line && other.line < end) end = other.line;
  return {fn.line, end};
}

bool changed_in_diff(const DeclaredFunction& fn, const DwarfFacts& facts, const std::vector<DiffFile>& diff) {
  const DiffFile* f = diff_file(diff, fn.file);
  if (!f || fn.line <= 0) return false;
  auto [begin, end] = span(fn, facts);
  for (int line : f->changed_lines)
    if (line >= begin && line < end) return true;
  return false;
}

bool is_changed_line(const std::vector<DiffFile>& diff, const std::string& file, int line) {
  const DiffFile* f = diff_file(diff, file);
  return f && std::find(f->changed_lines.begin(), f->changed_lines.end(), line) != f->changed_lines.end();
}

std::string where(const DeclaredFunction& fn) {
  auto slash = fn.file.rfind('/');
  return fmt::format("{}:{}", slash == std::string::npos ? fn.file : fn.file.substr(slash + 1), fn.line);
}

}  // namespace

ChangeReason reason_for(const std::string& symbol, const DwarfFacts& facts, const std::vector<DiffFile>& diff) {
  if (facts.empty()) return {"changed", "no DWARF to tell why"};
  const DeclaredFunction* self = facts.declaration_of(symbol);
  if (self && changed_in_diff(*self, facts, diff)) return {"changed directly", ""};
  std::vector<std::string> via;
  for (const auto& in : facts.inlined_into(symbol)) {
    if (!changed_in_diff(in, facts, diff)) continue;
    std::string s = fmt::format("`{}' ({})", in.name, where(in));
    if (std::find(via.begin(), via.end(), s) == via.end()) via.push_back(s);
  }
  if (!via.empty()) {
    std::string list;
    for (const auto& v : via) list += (list.empty() ? "" : ", ") + v;
    return {"inlined change", "inlines " + list};
  }
  // Changed lines its code comes from, outside its own span: inlined code
  // whose function DWARF does not place (a lambda's body, say).
  std::vector<std::string> lines;
  for (const auto& [file, line] : facts.code_lines(symbol)) {
    if (self && diff_file(diff, file) == diff_file(diff, self->file)) {
      auto [begin, end] = span(*self, facts);
      if (line >= begin && line < end) continue;
    }
    if (!is_changed_line(diff, file, line)) continue;
    std::string s = where({"", "", file, line});
    if (std::find(lines.begin(), lines.end(), s) == lines.end()) lines.push_back(s);
  }
  if (!lines.empty()) {
    std::string list;
    for (const auto& l : lines) list += (list.empty() ? "" : ", ") + l;
    return {"inlined change", "inlines changed code of " + list};
  }
  return {"changed", "its own lines did not change: it depends on something that did (a constant, "
                     "a __LINE__ moved by lines added above it, a callee's interface, a type)"};
}

std::optional<std::string> moved_line_numbers(const std::string& symbol,
                                              const std::vector<arch::ImmediateChange>& changes,
                                              const DwarfFacts& facts,
                                              const std::vector<DiffFile>& diff) {
  if (changes.empty() || facts.empty()) return std::nullopt;
  if (reason_for(symbol, facts, diff).reason != "changed") return std::nullopt;
  const DeclaredFunction* self = facts.declaration_of(symbol);
  if (!self) return std::nullopt;
  const DiffFile* file = diff_file(diff, self->file);
  if (!file) return std::nullopt;
  // The spans a __LINE__ of this code can come from, in the diff's file.
  std::vector<std::pair<int, int>> spans = {span(*self, facts)};
  for (const auto& in : facts.inlined_into(symbol))
    if (diff_file(diff, in.file) == file && in.line > 0) spans.push_back(span(in, facts));
  std::string moves;
  for (const auto& c : changes) {
    if (c.before <= 0 || c.before > INT_MAX || c.after <= 0 || c.after > INT_MAX) return std::nullopt;
    int after = static_cast<int>(c.after);
    auto moved_to = file->new_line_of(static_cast<int>(c.before));
    if (!moved_to || *moved_to != after) return std::nullopt;
    bool inside = false;
    for (auto [begin, end] : spans) inside = inside || (after >= begin && after < end);
    if (!inside) return std::nullopt;
    std::string move = fmt::format("{} -> {}", c.before, c.after);
    if (moves.find(move) == std::string::npos) moves += (moves.empty() ? "" : ", ") + move;
  }
  return moves;
}

}  // namespace graft
