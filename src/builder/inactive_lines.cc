#include "builder/inactive_lines.h"

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

#include "builder/build_command.h"

namespace graft {

namespace fs = std::filesystem;

namespace {

std::string trimmed(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r") - a + 1);
}

// A line that can hold code: not blank, not only a comment, not a directive.
bool holds_code(const std::string& line) {
  std::string t = trimmed(line);
  return !t.empty() && t[0] != '#' && t.rfind("//", 0) != 0 && t.rfind("/*", 0) != 0 &&
         t.rfind("*", 0) != 0;
}

// The directive a line is ("if", "ifdef", "else", "endif", ...), or "".
std::string directive(const std::string& line) {
  std::string t = trimmed(line);
  if (t.empty() || t[0] != '#') return "";
  t = trimmed(t.substr(1));
  size_t end = 0;
  while (end < t.size() && std::isalpha(static_cast<unsigned char>(t[end]))) ++end;
  return t.substr(0, end);
}

// The innermost conditional around line `at` (1-based) of `lines`.
std::string enclosing_conditional(const std::vector<std::string>& lines, int at,
                                  const std::string& name) {
  int depth = 0;
  for (int i = at - 1; i >= 1; --i) {
    std::string d = directive(lines[i - 1]);
    if (d == "endif") {
      ++depth;
    } else if (d == "if" || d == "ifdef" || d == "ifndef") {
      if (depth == 0)
        return fmt::format("`{}' ({}:{})", trimmed(lines[i - 1]), name, i);
      --depth;
    } else if ((d == "else" || d == "elif") && depth == 0) {
      return fmt::format("`{}' ({}:{})", trimmed(lines[i - 1]), name, i);
    }
  }
  return "";
}

}  // namespace

InactiveLines inactive_changed_lines(const CompileRecord& unit, const DiffFile& diff) {
  InactiveLines out;
  out.file = diff.path;
  std::ifstream src(unit.source);
  if (!src) return out;
  std::vector<std::string> lines;
  for (std::string l; std::getline(src, l);) lines.push_back(l);

  // The unit's command, preprocessing only, into a file of our own.
  char tmpl[] = "/tmp/graft-cpp-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) return out;
  close(fd);
  std::vector<std::string> argv;
  for (size_t i = 0; i < unit.argv.size(); ++i) {
    const std::string& a = unit.argv[i];
    if (a == "-c" || a == "-MD" || a == "-MMD" || a == "-MP") continue;
    if (a == "-o" || a == "-MF" || a == "-MT" || a == "-MQ") {
      ++i;
      continue;
    }
    if (a.rfind("-o", 0) == 0 || a.rfind("-MF", 0) == 0) continue;
    argv.push_back(a);
  }
  argv.insert(argv.end(), {"-E", "-o", tmpl});
  std::error_code ec;
  int rc = run_in_directory(unit.cwd, argv, {}, "/dev/null");
  std::set<int> active;
  if (rc == 0) {
    // `# N "file" flags' markers say where the next line comes from; GCC
    // keeps the other lines in step, blank for what it dropped.
    std::ifstream pre(tmpl);
    std::string current;
    int line = 0;
    bool mine = false;
    for (std::string l; std::getline(pre, l);) {
      if (l.size() > 2 && l[0] == '#' && l[1] == ' ' && std::isdigit(static_cast<unsigned char>(l[2]))) {
        std::istringstream m(l.substr(2));
        std::string file;
        m >> line >> std::quoted(file);
        mine = fs::weakly_canonical(fs::path(unit.cwd) / file, ec) ==
               fs::weakly_canonical(unit.source, ec);
        continue;
      }
      if (mine && !trimmed(l).empty()) active.insert(line);
      ++line;
    }
  }
  fs::remove(tmpl, ec);
  if (rc != 0) return out;
  for (int l : diff.changed_lines)
    if (l >= 1 && l <= static_cast<int>(lines.size()) && holds_code(lines[l - 1]) && !active.count(l))
      out.lines.push_back(l);
  if (!out.lines.empty())
    out.conditional = enclosing_conditional(lines, out.lines.front(), fs::path(diff.path).filename());
  return out;
}

}  // namespace graft
