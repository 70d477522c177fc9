// Loading and unloading livepatch modules (finit_module, delete_module),
// with the kernel log lines that explain a refusal.
#pragma once
#include <string>
#include <vector>

namespace graft::kernel {

// Loads the module; klp_enable_patch() in its init starts the transition.
// Throws with the error and the kernel's own messages about the module.
void load_module(const std::string& path, const std::string& name);
// Unloads a module whose patch is disabled (or replaced). Returns false
// with `why` set when the kernel refuses (still in use, forced patch).
bool unload_module(const std::string& name, std::string* why);
// Modules loaded now (/proc/modules) that are livepatch modules.
std::vector<std::string> loaded_livepatch_modules();

}  // namespace graft::kernel
