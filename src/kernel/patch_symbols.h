// Which object of the running kernel a symbol the patch does not define
// belongs to, and how the livepatch module reaches it (the resolve_symbols
// pass of graft build --kernel --from-diff):
//   - exported by vmlinux: the module loader resolves it, as for any module;
//   - defined by a module the diff patches (its statics, its globals,
//     exported or not, __this_module): .klp.sym.MODULE.NAME,POS, resolved
//     by livepatch when that module loads (no module dependency, so the
//     patch loads whether or not the module is there);
//   - exported by another module: the loader (the patch then depends on it);
//   - any other vmlinux symbol: .klp.sym.vmlinux.NAME,POS;
//   - a non-exported symbol of another module: refused. Livepatch resolves
//     a klp_object's relocations against that object and vmlinux only.
// POS tells apart statics defined more than once: the address the original
// code's reference holds in the image or in the shipped module.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kernel/kernel_image.h"
#include "kernel/shipped_module.h"

namespace graft::kernel {

using LearnedAddresses = std::map<std::pair<std::string, std::string>, uint64_t>;  // (name, file) -> address

class PatchSymbolResolver {
 public:
  // `module_of_file`: the patched module a source file's object is linked
  // into, null for vmlinux. `modules`: every module the diff patches.
  PatchSymbolResolver(const KernelImage& image, std::function<const ShippedModule*(const std::string&)> module_of_file,
                      std::vector<const ShippedModule*> modules, const LearnedAddresses& vmlinux_addresses,
                      const std::map<std::string, LearnedAddresses>& module_addresses);

  // The name the patch's undefined symbol `name` (a static of `file` when
  // `file` is not empty) gets: itself for the loader, or a .klp.sym name.
  // nullopt with the reason in `why` when the patch cannot reach it.
  std::optional<std::string> resolve(const std::string& name, const std::string& file, std::string* why) const;

  // The same for a hand-written patch (--from-source), whose references
  // carry no file and whose duplicates are pinned (GRAFT_SYMBOL_POS,
  // `pinned`, 0: none): a name a patched module defines, static or not,
  // is that module's; then exports, vmlinux, and the refusals of resolve().
  std::optional<std::string> resolve_declared(const std::string& name, unsigned pinned, std::string* why) const;

 private:
  std::optional<std::string> in_module(const ShippedModule& m, const std::string& name, const std::string& file,
                                       std::string* why, unsigned pinned = 0) const;
  std::optional<std::string> in_vmlinux(const std::string& name, const std::string& file, std::string* why) const;
  // The shipped module other than those patched that defines `name`, "" if none.
  std::string other_module_defining(const std::string& name) const;

  const KernelImage& image_;
  std::function<const ShippedModule*(const std::string&)> module_of_file_;
  std::vector<const ShippedModule*> modules_;
  const LearnedAddresses& vmlinux_addresses_;
  const std::map<std::string, LearnedAddresses>& module_addresses_;
};

}  // namespace graft::kernel
