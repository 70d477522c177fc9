// What a unified diff (diff -u, git diff, quilt) touches: the files, with
// the given number of leading path components stripped (patch -pN), and the
// lines of the new version that differ (added lines, and the line where
// lines were removed; context lines excluded).
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace graft {

struct DiffFile {
  std::string path;  // relative to the tree, after stripping
  std::vector<int> changed_lines;  // in the new version, ascending

  // A hunk's span on each side (@@ -old_start,old_count +new_start,new_count @@)
  // and the old/new numbers of its context lines.
  struct Hunk {
    int old_start = 0, old_count = 0, new_start = 0, new_count = 0;
    std::vector<std::pair<int, int>> context;
  };
  std::vector<Hunk> hunks;  // in order

  // Where line `old_line` of the old version is in the new one; nullopt if
  // the diff removed or changed it.
  std::optional<int> new_line_of(int old_line) const;
};

std::vector<DiffFile> parse_unified_diff(const std::string& text, int strip);

}  // namespace graft
