// Loading and unloading livepatch modules (finit_module, delete_module),
// with the kernel log lines that explain a refusal.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/unique_resource.h"

namespace graft::kernel {

// A module's bytes in a memfd of graft's: what graft checked (signature,
// manifest, run-pre check) is what the kernel loads, whatever the file
// holds by then.
class ModuleImage {
 public:
  // `path`: where the bytes came from, for messages.
  ModuleImage(std::span<const uint8_t> bytes, std::string path);
  const std::string& path() const { return path_; }
  // Opens the same bytes (ElfFile reads from it).
  std::string proc_path() const;
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::string path_;
};

// Loads the module as `name`; klp_enable_patch() in its init starts the
// transition. Throws with the error and the kernel's own messages about
// the module.
void load_module(const ModuleImage& image, const std::string& name);
// Unloads a module whose patch is disabled (or replaced). Returns false
// with `why` set when the kernel refuses (still in use, forced patch).
bool unload_module(const std::string& name, std::string* why);
// Modules loaded now (/proc/modules) that are livepatch modules.
std::vector<std::string> loaded_livepatch_modules();

}  // namespace graft::kernel
