#include "differ/unified_diff.h"

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
  int next_line = 0;  // new-side number of the next line of a hunk; 0 outside hunks
  while (std::getline(in, line)) {
    if (next_line > 0 && !line.empty() && (line[0] == '+' || line[0] == '-' || line[0] == ' ') &&
        line.rfind("--- ", 0) != 0 && line.rfind("+++ ", 0) != 0) {
      auto& lines = out.back().changed_lines;
      if (line[0] != ' ' && (lines.empty() || lines.back() != next_line)) lines.push_back(next_line);
      if (line[0] != '-') ++next_line;
      continue;
    }
    if (next_line > 0 && line.rfind("\\", 0) == 0) continue;  // "\ No newline at end of file"
    next_line = 0;
    if (line.rfind("--- ", 0) == 0) {
      old_path = header_path(line, strip);
    } else if (line.rfind("+++ ", 0) == 0) {
      std::string p = header_path(line, strip);
      if (p == "/dev/null") p = old_path;  // a deleted file
      if (p.empty() || p == "/dev/null") fail("diff: cannot tell the file of `{}'", line);
      out.push_back({p, {}});
    } else if (line.rfind("@@ -", 0) == 0 && !out.empty()) {
      // @@ -a,b +c,d @@: the new side starts at c and spans d lines (1 if absent).
      auto plus = line.find(" +");
      if (plus == std::string::npos) fail("diff: malformed hunk header `{}'", line);
      int start = 0;
      if (std::sscanf(line.c_str() + plus + 2, "%d", &start) < 1)
        fail("diff: malformed hunk header `{}'", line);
      next_line = std::max(start, 1);
    }
  }
  return out;
}

}  // namespace graft
