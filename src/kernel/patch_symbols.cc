#include "kernel/patch_symbols.h"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "common/file.h"
#include "kernel/klp_convert.h"

namespace graft::kernel {

namespace fs = std::filesystem;

PatchSymbolResolver::PatchSymbolResolver(const KernelImage& image,
                                         std::function<const ShippedModule*(const std::string&)> module_of_file,
                                         std::vector<const ShippedModule*> modules,
                                         const LearnedAddresses& vmlinux_addresses,
                                         const std::map<std::string, LearnedAddresses>& module_addresses)
    : image_(image),
      module_of_file_(std::move(module_of_file)),
      modules_(std::move(modules)),
      vmlinux_addresses_(vmlinux_addresses),
      module_addresses_(module_addresses) {}

std::optional<std::string> PatchSymbolResolver::resolve(const std::string& name, const std::string& file,
                                                        std::string* why) const {
  if (!file.empty()) {
    if (const ShippedModule* m = module_of_file_(file)) return in_module(*m, name, file, why);
    return in_vmlinux(name, file, why);
  }
  std::string exporter = image_.exporter(name);
  if (exporter == "vmlinux") return name;
  // A global reference binds to a global definition only, never to
  // another file's static of the same name.
  for (const ShippedModule* m : modules_)
    for (size_t i : m->named(name))
      if (m->symbols()[i].bind != STB_LOCAL) return in_module(*m, name, file, why);
  if (!exporter.empty()) return name;
  if (!image_.symbols().vmlinux_named(name).empty()) return in_vmlinux(name, file, why);
  std::string other = other_module_defining(name);
  if (!other.empty()) {
    *why = fmt::format("the patch refers to {}, a symbol of module {} that it does not export; a live patch "
                       "reaches only vmlinux, the modules it patches and exported symbols (livepatch resolves "
                       "an object's relocations against that object and vmlinux)",
                       name, other);
    return std::nullopt;
  }
  *why = fmt::format("the patch refers to {}, which neither vmlinux nor any module of {} defines", name,
                     image_.paths().release);
  return std::nullopt;
}

std::optional<std::string> PatchSymbolResolver::in_module(const ShippedModule& m, const std::string& name,
                                                          const std::string& file, std::string* why) const {
  std::string what = file.empty() ? name : fmt::format("{} ({})", name, file);
  auto candidates = m.named(name);
  if (candidates.empty()) {
    *why = fmt::format("the patch refers to {}, which module {} ({}) does not define", what, m.name(), m.path());
    return std::nullopt;
  }
  unsigned pos = 0;
  if (candidates.size() > 1) {
    auto learned = module_addresses_.find(m.name());
    if (learned != module_addresses_.end())
      if (auto a = learned->second.find({name, file}); a != learned->second.end()) {
        size_t sym = m.symbol_holding(a->second);
        if (sym != ShippedModule::npos && m.symbols()[sym].name == name) pos = m.position_of(sym);
      }
    if (!pos) {
      *why = fmt::format("the patch refers to {}, which module {} defines {} times, and the original code of the "
                         "changed functions does not refer to it, so graft cannot tell which",
                         what, m.name(), candidates.size());
      return std::nullopt;
    }
  }
  return livepatch_symbol_name(name, pos, m.name());
}

std::optional<std::string> PatchSymbolResolver::in_vmlinux(const std::string& name, const std::string& file,
                                                           std::string* why) const {
  std::string what = file.empty() ? name : fmt::format("{} ({})", name, file);
  auto candidates = image_.symbols().vmlinux_named(name);
  if (candidates.empty()) {
    *why = fmt::format("the patch refers to {}, which is not in vmlinux (not linked in this configuration?)", what);
    return std::nullopt;
  }
  unsigned pos = 0;
  if (candidates.size() > 1) {
    auto a = vmlinux_addresses_.find({name, file});
    for (size_t k = 0; a != vmlinux_addresses_.end() && k < candidates.size(); ++k)
      if (candidates[k]->address == a->second) pos = unsigned(k + 1);
    if (!pos) {
      *why = fmt::format("the patch refers to {}, which vmlinux defines {} times, and the original code of the "
                         "changed functions does not refer to it, so graft cannot tell which",
                         what, candidates.size());
      return std::nullopt;
    }
  }
  return livepatch_symbol_name(name, pos);
}

std::string PatchSymbolResolver::other_module_defining(const std::string& name) const {
  const std::string& dir = image_.paths().modules;
  std::string order = read_text_file(dir + "/modules.order", size_t(16) << 20);
  size_t i = 0;
  while (i < order.size()) {
    size_t e = order.find('\n', i);
    if (e == std::string::npos) e = order.size();
    std::string entry = order.substr(i, e - i);
    i = e + 1;
    if (entry.empty() || entry.find("..") != std::string::npos) continue;
    std::string path = dir + "/" + entry;
    if (std::any_of(modules_.begin(), modules_.end(), [&](const ShippedModule* m) { return m->path() == path; }))
      continue;
    if (!fs::is_regular_file(path)) continue;
    try {
      ElfFile elf(path);
      for (const auto& s : elf.symbols())
        if (s.defined() && s.name == name && s.type != STT_FILE && s.type != STT_SECTION) {
          std::string module = fs::path(entry).stem().string();
          std::replace(module.begin(), module.end(), '-', '_');
          return module;
        }
    } catch (const Error&) {
      // not a readable module: it cannot be the one
    }
  }
  return "";
}

}  // namespace graft::kernel
