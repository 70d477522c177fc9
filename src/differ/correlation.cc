#include "differ/correlation.h"

#include <set>

namespace graft {

namespace {
bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

std::vector<std::string> components(const std::string& name) {
  std::vector<std::string> out;
  size_t start = 0;
  // A leading dot (".LC0") belongs to the first component.
  size_t from = name.empty() || name[0] != '.' ? 0 : 1;
  for (size_t i = name.find('.', from); i != std::string::npos; i = name.find('.', i + 1)) {
    out.push_back(name.substr(start, i - start));
    start = i + 1;
  }
  out.push_back(name.substr(start));
  return out;
}
}  // namespace

std::string stable_name(const std::string& name) {
  auto parts = components(name);
  std::string out = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) out += "." + (all_digits(parts[i]) ? std::string("#") : parts[i]);
  return out;
}

bool has_compiler_number(const std::string& name) { return stable_name(name) != name; }

bool is_cold_piece(const std::string& name) {
  auto parts = components(name);
  for (size_t i = 1; i < parts.size(); ++i)
    if (parts[i] == "cold") return true;
  return false;
}

std::string cold_piece_parent(const std::string& name) {
  size_t at = name.find(".cold");
  return at == std::string::npos ? name : name.substr(0, at);
}

std::map<size_t, size_t> correlate(const std::vector<CorrelationSymbol>& original,
                                   const std::vector<CorrelationSymbol>& patched) {
  std::map<size_t, size_t> out;
  std::set<size_t> taken;
  // 1. Names without invented numbers are stable: pair equal names.
  std::map<std::pair<std::string, bool>, std::vector<size_t>> by_exact;
  for (size_t i = 0; i < original.size(); ++i)
    if (!has_compiler_number(original[i].name)) by_exact[{original[i].name, original[i].function}].push_back(i);
  for (size_t p = 0; p < patched.size(); ++p) {
    if (has_compiler_number(patched[p].name)) continue;
    auto it = by_exact.find({patched[p].name, patched[p].function});
    if (it != by_exact.end() && it->second.size() == 1) {
      out[p] = it->second[0];
      taken.insert(it->second[0]);
    }
  }
  // 2. Numbered names: a stable name (with its owner) that is unique on
  // both sides pairs; several on both sides pair only by exact name.
  using Key = std::tuple<std::string, bool, std::string>;
  std::map<Key, std::vector<size_t>> orig_groups, patched_groups;
  for (size_t i = 0; i < original.size(); ++i)
    if (has_compiler_number(original[i].name) && !taken.count(i))
      orig_groups[{stable_name(original[i].name), original[i].function, original[i].owner}].push_back(i);
  for (size_t p = 0; p < patched.size(); ++p)
    if (has_compiler_number(patched[p].name) && !out.count(p))
      patched_groups[{stable_name(patched[p].name), patched[p].function, patched[p].owner}].push_back(p);
  for (const auto& [key, ps] : patched_groups) {
    auto it = orig_groups.find(key);
    if (it == orig_groups.end()) continue;
    const auto& os = it->second;
    if (ps.size() == 1 && os.size() == 1) {
      out[ps[0]] = os[0];
      continue;
    }
    if (ps.size() != os.size()) continue;  // ambiguous: left unpaired
    for (size_t p : ps)
      for (size_t o : os)
        if (patched[p].name == original[o].name) out[p] = o;
  }
  return out;
}

}  // namespace graft
