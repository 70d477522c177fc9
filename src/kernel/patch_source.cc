#include "kernel/patch_source.h"

#include <charconv>
#include <set>

#include "common/error.h"
#include "elf/elf_file.h"

namespace graft::kernel {

namespace {

bool identifier(const std::string& s) {
  if (s.empty() || s.size() > 500 || isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

unsigned position(const std::string& s, const std::string& source, const std::string& what) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > 100000)
    fail("{}: {}: position '{}' is not a number", source, what, s);
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep) out.emplace_back();
    else out.back().push_back(c);
  }
  return out;
}

}  // namespace

const char* callback_field(KernelCallback c) {
  switch (c) {
    case KernelCallback::PrePatch: return "pre_patch";
    case KernelCallback::PostPatch: return "post_patch";
    case KernelCallback::PreUnpatch: return "pre_unpatch";
    case KernelCallback::PostUnpatch: return "post_unpatch";
  }
  return "?";
}

KernelPatchSource read_patch_declarations(const std::string& object, const std::string& source) {
  ElfFile elf(object);
  KernelPatchSource out;
  const ElfSection* s = elf.section(".graft.klp");
  if (!s) fail("{}: declares no replacement (GRAFT_REPLACE from <graft/kernel_patch.h>)", source);
  Bytes data = elf.section_data(s->index);
  std::set<std::string> targets;
  size_t i = 0;
  while (i < data.size()) {
    if (data[i] == 0) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < data.size() && data[end] != 0) ++end;
    std::string record(data.begin() + i, data.begin() + end);
    i = end;
    auto f = split(record, ':');
    if (f.size() != 4 || f[0] != "graft") fail("{}: malformed record '{}' in .graft.klp", source, record);
    const std::string& kind = f[1];
    if (kind == "replace") {
      auto t = split(f[2], ',');
      if (t.size() != 2 || !identifier(t[0]) || !identifier(f[3]))
        fail("{}: GRAFT_REPLACE({}, {}): name a kernel function and a function of the patch", source, f[2], f[3]);
      KernelReplacement r{t[0], position(t[1], source, "GRAFT_REPLACE_POS " + t[0]), f[3]};
      if (!targets.insert(r.target + "," + std::to_string(r.sympos)).second)
        fail("{}: {} is replaced twice", source, r.target);
      out.replacements.push_back(r);
    } else if (kind == "replace_in") {
      auto t = split(f[2], ',');
      if (t.size() != 3 || !identifier(t[0]) || t[0].size() > 55 || !identifier(t[1]) || !identifier(f[3]))
        fail("{}: GRAFT_REPLACE_IN({}, {}): name a module, a function of it and a function of the patch", source,
             f[2], f[3]);
      KernelReplacement r{t[1], position(t[2], source, "GRAFT_REPLACE_IN_POS " + t[1]), f[3], t[0]};
      if (!targets.insert(r.object + ":" + r.target + "," + std::to_string(r.sympos)).second)
        fail("{}: {} of module {} is replaced twice", source, r.target, r.object);
      out.replacements.push_back(r);
    } else if (kind == "sympos") {
      if (!identifier(f[2])) fail("{}: GRAFT_SYMBOL_POS: '{}' is not a symbol name", source, f[2]);
      out.symbol_positions[f[2]] = position(f[3], source, "GRAFT_SYMBOL_POS " + f[2]);
      if (out.symbol_positions[f[2]] == 0) fail("{}: GRAFT_SYMBOL_POS {}: positions start at 1", source, f[2]);
    } else if (kind == "cumulative") {
      out.cumulative = true;
    } else {
      static const std::map<std::string, KernelCallback> kinds = {
          {"pre_patch", KernelCallback::PrePatch}, {"post_patch", KernelCallback::PostPatch},
          {"pre_unpatch", KernelCallback::PreUnpatch}, {"post_unpatch", KernelCallback::PostUnpatch}};
      auto k = kinds.find(kind);
      if (k == kinds.end()) fail("{}: unknown record kind '{}'", source, kind);
      if (!identifier(f[2])) fail("{}: callback '{}' is not a function name", source, f[2]);
      if (!out.callbacks.emplace(k->second, f[2]).second) fail("{}: two {} callbacks", source, kind);
    }
  }
  if (out.replacements.empty())
    fail("{}: declares no replacement (GRAFT_REPLACE from <graft/kernel_patch.h>)", source);
  return out;
}

}  // namespace graft::kernel
