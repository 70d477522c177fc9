#include "kernel/package_modules.h"

#include <elf.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "common/file.h"
#include "elf/elf_file.h"

namespace graft::kernel {

namespace fs = std::filesystem;

std::vector<PackageModule> read_modules_order(const std::string& order_file) {
  std::vector<PackageModule> out;
  for (const std::string& entry : split_lines(read_text_file(order_file, size_t(16) << 20))) {
    if (entry.empty()) continue;
    if (entry.rfind("kernel/", 0) != 0 || entry.find("..") != std::string::npos || fs::path(entry).extension() != ".ko")
      fail("{}: unexpected entry '{}'", order_file, entry);
    std::string name = fs::path(entry).stem().string();
    std::replace(name.begin(), name.end(), '-', '_');
    out.push_back({name, entry});
  }
  return out;
}

std::vector<PackageModule> package_modules(const std::string& modules_dir) {
  return read_modules_order(modules_dir + "/modules.order");
}

PackageModule package_module(const std::string& modules_dir, const std::string& name) {
  std::vector<PackageModule> found;
  for (auto& m : package_modules(modules_dir))
    if (m.name == name) found.push_back(m);
  if (found.empty())
    fail("module {} is not shipped with this kernel ({}/modules.order does not list it)", name, modules_dir);
  if (found.size() > 1)
    fail("{}/modules.order lists module {} {} times ({}, {})", modules_dir, name, found.size(), found[0].file,
         found[1].file);
  return found.front();
}

std::vector<PackageModule> modules_defining(const std::string& modules_dir, const std::string& symbol,
                                            bool functions_only, const std::vector<std::string>& skip) {
  std::vector<PackageModule> out;
  for (auto& m : package_modules(modules_dir)) {
    if (std::find(skip.begin(), skip.end(), m.name) != skip.end()) continue;
    std::string path = modules_dir + "/" + m.file;
    if (!fs::is_regular_file(path)) continue;
    try {
      ElfFile elf(path);
      for (const auto& s : elf.symbols()) {
        if (!s.defined() || s.name != symbol || s.type == STT_FILE || s.type == STT_SECTION) continue;
        if (functions_only && s.type != STT_FUNC) continue;
        if (s.shndx == SHN_ABS || s.shndx == SHN_COMMON) continue;
        out.push_back(m);
        break;
      }
    } catch (const Error&) {
      // not a readable module: it cannot be the one
    }
  }
  return out;
}

}  // namespace graft::kernel
