#include "kernel/patch_symbols.h"

#include <elf.h>
#include <fmt/format.h>

#include "common/error.h"
#include "kernel/klp_convert.h"
#include "kernel/package_modules.h"

namespace graft::kernel {

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

std::optional<std::string> PatchSymbolResolver::resolve_declared(const std::string& name, unsigned pinned,
                                                                 std::string* why) const {
  // A name a replaced module defines is that module's, even where vmlinux
  // or the module itself exports it: the loader would make the patch
  // depend on the module, and it could not load before the module does.
  std::vector<const ShippedModule*> owners;
  for (const ShippedModule* m : modules_)
    if (!m->named(name).empty()) owners.push_back(m);
  if (owners.size() > 1) {
    *why = fmt::format("the patch refers to {}, which modules {} and {} both define: graft cannot tell which is "
                       "meant",
                       name, owners[0]->name(), owners[1]->name());
    return std::nullopt;
  }
  if (owners.size() == 1) return in_module(*owners.front(), name, "", why, pinned);
  if (!image_.exporter(name).empty()) return name;
  if (!image_.symbols().vmlinux_named(name).empty()) {
    try {
      image_.symbols().resolve(name, pinned);
    } catch (const Error& e) {
      *why = fmt::format("the patch uses {}, which vmlinux does not export: {}", name, e.what());
      return std::nullopt;
    }
    return livepatch_symbol_name(name, pinned);
  }
  return resolve(name, "", why);
}

std::optional<std::string> PatchSymbolResolver::in_module(const ShippedModule& m, const std::string& name,
                                                          const std::string& file, std::string* why,
                                                          unsigned pinned) const {
  std::string what = file.empty() ? name : fmt::format("{} ({})", name, file);
  auto candidates = m.named(name);
  if (candidates.empty()) {
    *why = fmt::format("the patch refers to {}, which module {} ({}) does not define", what, m.name(), m.path());
    return std::nullopt;
  }
  unsigned pos = 0;
  if (pinned > candidates.size()) {
    *why = fmt::format("the patch pins {} to position {}, but module {} defines it {} time(s)", what, pinned,
                       m.name(), candidates.size());
    return std::nullopt;
  }
  if (candidates.size() > 1 && pinned) pos = pinned;
  if (candidates.size() > 1 && !pos) {
    auto learned = module_addresses_.find(m.name());
    if (learned != module_addresses_.end())
      if (auto a = learned->second.find({name, file}); a != learned->second.end()) {
        size_t sym = m.symbol_holding(a->second);
        if (sym != ShippedModule::npos && m.symbols()[sym].name == name) pos = m.position_of(sym);
      }
    if (!pos) {
      *why = fmt::format("the patch refers to {}, which module {} defines {} times, and neither the original code "
                         "of changed functions nor a GRAFT_SYMBOL_POS tells which",
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
  std::vector<std::string> patched;
  for (const ShippedModule* m : modules_) patched.push_back(m->name());
  auto others = modules_defining(image_.paths().modules, name, false, patched);
  return others.empty() ? "" : others.front().name;
}

}  // namespace graft::kernel
