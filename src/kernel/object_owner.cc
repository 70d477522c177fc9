#include "kernel/object_owner.h"

#include <filesystem>
#include <vector>

#include "common/error.h"
#include "common/file.h"
#include "kernel/package_modules.h"

namespace graft::kernel {

namespace fs = std::filesystem;

ObjectOwner owner_of_object(const std::string& tree, const std::string& object, const std::string& modules_order) {
  fs::path o(object);
  std::string cmd_file = (fs::path(tree) / o.parent_path() / ("." + o.filename().string() + ".cmd")).string();
  if (!fs::is_regular_file(cmd_file))
    fail("{}: Kbuild left no command file {}: cannot tell whether it is linked into vmlinux or a module", object,
         cmd_file);
  std::string text = read_text_file(cmd_file, size_t(16) << 20);
  std::string head = "cmd_" + object + " := ";
  size_t at = text.rfind(head, 0) == 0 ? 0 : text.find("\n" + head);
  if (at == std::string::npos) fail("{}: no line '{}' in {}", object, head, cmd_file);
  if (at) ++at;
  size_t end = text.find('\n', at);
  std::string line = text.substr(at + head.size(), end == std::string::npos ? std::string::npos : end - at - head.size());
  bool module = false;
  std::string modname;
  for (std::string_view w : split_fields(line)) {
    if (w == "-DMODULE") module = true;
    const std::string key = "-DKBUILD_MODNAME=";
    if (w.rfind(key, 0) == 0) {
      modname = w.substr(key.size());
      // Quoted for the shell and for C: '"af_alg"'.
      for (const char* q : {"'", "\""})
        if (modname.size() >= 2 && modname.front() == *q && modname.back() == *q)
          modname = modname.substr(1, modname.size() - 2);
    }
  }
  ObjectOwner owner;
  if (!module) return owner;
  if (modname.empty()) fail("{}: compiled as part of a module (-DMODULE) but {} names no KBUILD_MODNAME", object, cmd_file);
  if (modname.find(':') != std::string::npos)
    fail("{}: linked into several modules ({}): graft patches one module's copy per function", object, modname);
  for (char c : modname)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_'))
      fail("{}: KBUILD_MODNAME '{}' in {} is not a module name", object, modname, cmd_file);
  owner.module = modname;
  // The module lives in the directory of the Makefile that names it, which
  // is the object's directory or one above it (objects in subdirectories).
  std::string best;
  for (const auto& m : read_modules_order(modules_order)) {
    if (m.name != modname) continue;
    std::string dir = fs::path(m.file.substr(7)).parent_path().string();
    std::string object_dir = o.parent_path().string();
    bool above = object_dir == dir || object_dir.rfind(dir + "/", 0) == 0;
    if (above && m.file.size() > best.size()) best = m.file;
  }
  if (best.empty())
    fail("{} is part of module {}, which the kernel package does not ship ({} does not list it)", object, modname,
         modules_order);
  owner.module_file = best;
  return owner;
}

}  // namespace graft::kernel
