#include "builder/unified_diff.h"

#include <cstdio>
#include <sstream>

#include "common/error.h"

namespace graft {

namespace {
std::string header_path(const std::string& line, int strip) {
  std::string p = line.substr(4);
  if (auto tab = p.find('\t'); tab != std::string::npos) p = p.substr(0, tab);
  while (!p.empty() && (p.back() == ' ' || p.back() == '\r')) p.pop_back();
  if (p == "/dev/null") return p;
  for (int i = 0; i < strip; ++i) {
    auto slash = p.find('/');
    if (slash == std::string::npos) return "";
    p = p.substr(slash + 1);
  }
  return p;
}
}  // namespace

std::vector<DiffFile> parse_unified_diff(const std::string& text, int strip) {
  std::vector<DiffFile> out;
  std::istringstream in(text);
  std::string line, old_path;
  // Old- and new-side numbers of the next line of a hunk; 0 outside hunks.
  int next_old = 0, next_line = 0;
  while (std::getline(in, line)) {
    if (next_line > 0 && !line.empty() && (line[0] == '+' || line[0] == '-' || line[0] == ' ') &&
        line.rfind("--- ", 0) != 0 && line.rfind("+++ ", 0) != 0) {
      auto& lines = out.back().changed_lines;
      if (line[0] != ' ' && (lines.empty() || lines.back() != next_line)) lines.push_back(next_line);
      if (line[0] == ' ') out.back().hunks.back().context.emplace_back(next_old, next_line);
      if (line[0] != '-') ++next_line;
      if (line[0] != '+') ++next_old;
      continue;
    }
    if (next_line > 0 && line.rfind("\\", 0) == 0) continue;  // "\ No newline at end of file"
    next_line = next_old = 0;
    if (line.rfind("--- ", 0) == 0) {
      old_path = header_path(line, strip);
    } else if (line.rfind("+++ ", 0) == 0) {
      std::string p = header_path(line, strip);
      if (p == "/dev/null") p = old_path;  // a deleted file
      if (p.empty() || p == "/dev/null") fail("diff: cannot tell the file of `{}'", line);
      out.push_back({p, {}, {}});
    } else if (line.rfind("@@ -", 0) == 0 && !out.empty()) {
      // @@ -a,b +c,d @@ (a count is 1 when absent).
      DiffFile::Hunk h;
      int n = std::sscanf(line.c_str(), "@@ -%d,%d +%d,%d", &h.old_start, &h.old_count,
                          &h.new_start, &h.new_count);
      if (n < 4) {
        h = {};
        h.old_count = h.new_count = 1;
        int a = 0, c = 0;
        if (std::sscanf(line.c_str(), "@@ -%d +%d,%d", &h.old_start, &h.new_start, &c) == 3)
          h.new_count = c;
        else if (std::sscanf(line.c_str(), "@@ -%d,%d +%d", &h.old_start, &a, &h.new_start) == 3)
          h.old_count = a;
        else if (std::sscanf(line.c_str(), "@@ -%d +%d", &h.old_start, &h.new_start) != 2)
          fail("diff: malformed hunk header `{}'", line);
      }
      if (h.old_count < 0 || h.new_count < 0) fail("diff: malformed hunk header `{}'", line);
      // A side with no lines has no context either: its start only names
      // the line before the change.
      next_old = std::max(h.old_start, 1);
      next_line = std::max(h.new_start, 1);
      out.back().hunks.push_back(std::move(h));
    }
  }
  return out;
}

std::optional<int> DiffFile::new_line_of(int old_line) const {
  int shift = 0;
  for (const auto& h : hunks) {
    int old_first = h.old_count == 0 ? h.old_start + 1 : h.old_start;
    if (old_line < old_first) break;
    if (old_line < old_first + h.old_count) {
      for (const auto& [o, n] : h.context)
        if (o == old_line) return n;
      return std::nullopt;
    }
    shift = (h.new_count == 0 ? h.new_start + 1 : h.new_start) + h.new_count -
            (old_first + h.old_count);
  }
  return old_line + shift;
}

}  // namespace graft
