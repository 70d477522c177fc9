// The loadable modules a kernel package ships, as its modules.order lists
// them (kernel/crypto/af_alg.ko, one a line), and which of them define a
// symbol: where graft looks for a module by name, for the owner of a
// function a patch replaces, and for the owner of a symbol it refers to.
#pragma once
#include <string>
#include <vector>

namespace graft::kernel {

struct PackageModule {
  std::string name;  // as the kernel names it (/proc/modules): af_alg
  std::string file;  // under lib/modules/RELEASE/: kernel/crypto/af_alg.ko
};

// The entries of a modules.order file, validated (each under kernel/, no
// "..", a .ko file). Throws naming the file if it cannot be read.
std::vector<PackageModule> read_modules_order(const std::string& order_file);
// Those of `modules_dir`/modules.order.
std::vector<PackageModule> package_modules(const std::string& modules_dir);

// The module named `name` (Kbuild's '_' for a file's '-'); throws, naming
// modules.order, when the package ships none (or, impossible for a sane
// package, several).
PackageModule package_module(const std::string& modules_dir, const std::string& name);

// The shipped modules (other than those in `skip`, by name) whose symbol
// table defines `symbol` in an allocated section; `functions_only` keeps
// STT_FUNC definitions only. A module file that cannot be read as ELF is
// passed over: it cannot define anything graft could reach.
std::vector<PackageModule> modules_defining(const std::string& modules_dir, const std::string& symbol,
                                            bool functions_only, const std::vector<std::string>& skip = {});

}  // namespace graft::kernel
