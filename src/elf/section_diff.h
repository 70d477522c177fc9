// Where two builds of one binary differ, section by section: what an
// operator needs to read why a rebuild is not bit for bit the installed
// binary (another version of a build dependency changes a string in
// .rodata, and the offsets that point past it in .text).
#pragma once
#include <string>

namespace graft {

// "" when the loaded sections of `a` and `b` have the same names, sizes and
// bytes; else e.g. ".rodata (384 bytes differ), .text (10 bytes differ),
// .data (1 byte differs)" or ".rodata (0x1d164 bytes in one, 0x1d165 in the
// other)", the sections with the most differences first, at most `limit`.
std::string section_differences(const std::string& a, const std::string& b, size_t limit = 4);

}  // namespace graft
