// What a unified diff (diff -u, git diff, quilt) touches: the files, with
// the given number of leading path components stripped (patch -pN), and the
// lines of the new version that differ (added lines, and the line where
// lines were removed; context lines excluded).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace graft {

struct DiffFile {
  std::string path;  // relative to the tree, after stripping
  std::vector<int> changed_lines;  // in the new version, ascending
};

std::vector<DiffFile> parse_unified_diff(const std::string& text, int strip);

}  // namespace graft
