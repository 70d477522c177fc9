// Where a compiled object of the kernel tree ends up: linked into vmlinux,
// or into a loadable module. Kbuild decides it from the Makefiles and
// records the decision in the object's command file (DIR/.NAME.o.cmd):
// objects of a module are compiled with -DMODULE and KBUILD_MODNAME names
// the module (scripts/Makefile.lib: part-of-module, modname_flags). The
// module's file comes from the kernel package's modules.order, which lists
// every module it ships (kernel/crypto/af_alg.ko).
#pragma once
#include <string>

namespace graft::kernel {

struct ObjectOwner {
  std::string module;       // "" for vmlinux, else KBUILD_MODNAME (af_alg)
  std::string module_file;  // under /lib/modules/RELEASE/: kernel/crypto/af_alg.ko
};

// Reads `object`'s command file in `tree` (after Kbuild compiled it) and,
// for a module's object, finds the module in `modules_order`. Throws
// naming the object when the command file is missing or malformed, when
// the object is linked into several modules, or when the kernel package
// does not ship the module.
ObjectOwner owner_of_object(const std::string& tree, const std::string& object, const std::string& modules_order);

}  // namespace graft::kernel
