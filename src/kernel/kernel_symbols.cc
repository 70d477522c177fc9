#include "kernel/kernel_symbols.h"

#include <algorithm>
#include <charconv>

#include "common/error.h"
#include "common/file.h"

namespace graft::kernel {

SymbolTable SymbolTable::parse(std::string_view text, const std::string& origin) {
  SymbolTable table;
  table.origin_ = origin;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_no;
    if (line.empty()) continue;
    auto f = split_fields(line);
    if (f.size() < 3 || f.size() > 4 || f[1].size() != 1 || f[0].size() > 16)
      fail("{}:{}: not a symbol line: '{}'", origin, line_no, line.substr(0, 120));
    KernelSymbol s;
    auto [p, ec] = std::from_chars(f[0].data(), f[0].data() + f[0].size(), s.address, 16);
    if (ec != std::errc() || p != f[0].data() + f[0].size())
      fail("{}:{}: bad address '{}'", origin, line_no, f[0]);
    s.type = f[1][0];
    s.name = std::string(f[2]);
    if (f.size() == 4) {
      if (f[3].size() < 3 || f[3].front() != '[' || f[3].back() != ']')
        fail("{}:{}: bad module field '{}'", origin, line_no, f[3]);
      s.module = std::string(f[3].substr(1, f[3].size() - 2));
      table.module_symbols_.push_back(std::move(s));
      continue;
    }
    table.symbols_.push_back(std::move(s));
  }
  std::stable_sort(table.symbols_.begin(), table.symbols_.end(),
                   [](const KernelSymbol& a, const KernelSymbol& b) { return a.address < b.address; });
  for (size_t i = 0; i < table.symbols_.size(); ++i) table.by_name_.emplace(table.symbols_[i].name, i);
  if (table.symbols_.empty()) fail("{}: no symbols", origin);
  return table;
}

SymbolTable SymbolTable::read(const std::string& path) {
  return parse(read_text_file(path, size_t(256) << 20), path);
}

std::vector<const KernelSymbol*> SymbolTable::vmlinux_named(const std::string& name) const {
  std::vector<const KernelSymbol*> out;
  auto [lo, hi] = by_name_.equal_range(name);
  std::vector<size_t> idx;
  for (auto it = lo; it != hi; ++it) idx.push_back(it->second);
  std::sort(idx.begin(), idx.end());
  for (size_t i : idx) out.push_back(&symbols_[i]);
  return out;
}

const KernelSymbol& SymbolTable::resolve(const std::string& name, unsigned pos) const {
  auto all = vmlinux_named(name);
  if (all.empty()) fail("symbol {} is not in {}", name, origin_);
  if (pos == 0) {
    if (all.size() > 1)
      fail("symbol {} is defined {} times in {}: name its position (1-{}, address order) "
           "with GRAFT_REPLACE_POS or GRAFT_SYMBOL_POS",
           name, all.size(), origin_, all.size());
    return *all[0];
  }
  if (pos > all.size())
    fail("symbol {},{}: {} defines {} only {} time(s)", name, pos, origin_, name, all.size());
  return *all[pos - 1];
}

const KernelSymbol* SymbolTable::next_after(uint64_t address) const {
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), address,
                             [](uint64_t a, const KernelSymbol& s) { return a < s.address; });
  return it == symbols_.end() ? nullptr : &*it;
}

const KernelSymbol* SymbolTable::text_at(uint64_t address, const std::string& preferred) const {
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), address,
                             [](uint64_t a, const KernelSymbol& s) { return a < s.address; });
  while (it != symbols_.begin()) {
    --it;
    if (!it->text()) continue;
    for (const KernelSymbol* alias : vmlinux_named(preferred))
      if (alias->address == it->address && alias->text()) return alias;
    return &*it;
  }
  return nullptr;
}

std::vector<const KernelSymbol*> SymbolTable::module_named(const std::string& module, const std::string& name) const {
  std::vector<const KernelSymbol*> out;
  for (const auto& s : module_symbols_)
    if (s.module == module && s.name == name) out.push_back(&s);
  return out;
}

bool SymbolTable::module_loaded(const std::string& module) const {
  for (const auto& s : module_symbols_)
    if (s.module == module) return true;
  return false;
}

const KernelSymbol* SymbolTable::module_next_after(const std::string& module, uint64_t address) const {
  const KernelSymbol* best = nullptr;
  for (const auto& s : module_symbols_)
    if (s.module == module && s.address > address && (!best || s.address < best->address)) best = &s;
  return best;
}

const KernelSymbol* SymbolTable::first(const std::string& name) const {
  auto all = vmlinux_named(name);
  return all.empty() ? nullptr : all[0];
}

std::map<std::string, std::string> read_exported_symbols(const std::string& module_symvers) {
  std::string text = read_text_file(module_symvers, size_t(64) << 20);
  std::map<std::string, std::string> out;
  bool vmlinux = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    // CRC <tab> NAME <tab> MODULE <tab> EXPORT_SYMBOL[_GPL] <tab> NAMESPACE
    size_t t1 = line.find('\t');
    if (t1 == std::string_view::npos) continue;
    size_t t2 = line.find('\t', t1 + 1);
    if (t2 == std::string_view::npos) fail("{}: malformed line '{}'", module_symvers, line.substr(0, 120));
    size_t t3 = line.find('\t', t2 + 1);
    std::string_view owner = line.substr(t2 + 1, t3 == std::string_view::npos ? std::string_view::npos : t3 - t2 - 1);
    // A module is named by its path without .ko (fs/ext4/ext4), '-' as '_'.
    std::string module(owner.substr(owner.rfind('/') == std::string_view::npos ? 0 : owner.rfind('/') + 1));
    for (char& c : module)
      if (c == '-') c = '_';
    if (module.empty()) fail("{}: malformed line '{}'", module_symvers, line.substr(0, 120));
    vmlinux |= module == "vmlinux";
    out.emplace(line.substr(t1 + 1, t2 - t1 - 1), module);
  }
  if (!vmlinux) fail("{}: no symbols exported by vmlinux", module_symvers);
  return out;
}

}  // namespace graft::kernel
