#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "common/hash.h"

namespace graft {

// Reads a whole file; refuses files larger than `limit` bytes.
Bytes read_file(const std::string& path, size_t limit = size_t(1) << 30);
std::string read_text_file(const std::string& path, size_t limit = size_t(64) << 20);
void write_file(const std::string& path, std::span<const uint8_t> data);
void write_text_file(const std::string& path, const std::string& text);
// The lines of a text, without their '\n' (a last line without one too).
std::vector<std::string> split_lines(const std::string& text);
// The fields of `line` separated by spaces and tabs (views into it).
std::vector<std::string_view> split_fields(std::string_view line);

}  // namespace graft
