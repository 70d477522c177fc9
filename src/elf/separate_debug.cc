#include "elf/separate_debug.h"

#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "common/unique_resource.h"
#include "elf/elf_file.h"

namespace graft {

namespace {

// libdwfl's search list: "" (beside the file), ".debug" (its .debug/
// folder), then the absolute roots, which it also searches by build-id.
const std::string& dwfl_search_path() {
  static const std::string path = ":.debug:" + debug_roots();
  return path;
}

std::string debuglink_name(const std::string& path) {
  elf_version(EV_CURRENT);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return {};
  UniqueHandle<Elf, elf_end> elf(elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr));
  GElf_Word crc = 0;
  const char* name = elf ? dwelf_elf_gnu_debuglink(elf.get(), &crc) : nullptr;
  return name ? name : "";
}

}  // namespace

std::string debug_roots() {
  const char* env = std::getenv("GRAFT_DEBUG_ROOT");
  return env && *env ? env : "/usr/lib/debug:" + graft_debug_root();
}

std::string graft_debug_root() {
  const char* env = std::getenv("GRAFT_DEBUG_CACHE");
  return env && *env ? env : "/var/cache/graft/debug";
}

std::optional<std::string> find_separate_debug_file(const std::string& path) {
  // The callbacks must outlive the Dwfl: static, with the path fixed once.
  static char* search_path = strdup(dwfl_search_path().c_str());
  static const Dwfl_Callbacks callbacks = {
      .find_elf = dwfl_build_id_find_elf,
      .find_debuginfo = dwfl_standard_find_debuginfo,
      .section_address = dwfl_offline_section_address,
      .debuginfo_path = &search_path,
  };
  std::unique_ptr<Dwfl, void (*)(Dwfl*)> dwfl(dwfl_begin(&callbacks), dwfl_end);
  if (!dwfl) return std::nullopt;
  Dwfl_Module* mod = dwfl_report_offline(dwfl.get(), "", path.c_str(), -1);
  dwfl_report_end(dwfl.get(), nullptr, nullptr);
  if (!mod) return std::nullopt;
  // Looking for the DWARF makes libdwfl look for the debug file; a debug
  // file without DWARF (only a symbol table) is found by the symbol table.
  Dwarf_Addr bias = 0;
  if (!dwfl_module_getdwarf(mod, &bias)) dwfl_module_getsymtab(mod);
  const char* main_file = nullptr;
  const char* debug_file = nullptr;
  dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr, &main_file, &debug_file);
  if (!debug_file || (main_file && std::strcmp(main_file, debug_file) == 0)) return std::nullopt;
  return std::string(debug_file);
}

std::string debug_file_places(const std::string& path) {
  std::string places;
  if (auto id = read_build_id(path); id && id->size() > 2) {
    std::string roots = debug_roots();
    size_t start = 0;
    while (start <= roots.size()) {
      size_t end = roots.find(':', start);
      if (end == std::string::npos) end = roots.size();
      if (end > start)
        places += fmt::format("{}{}/.build-id/{}/{}.debug", places.empty() ? "" : ", ",
                              roots.substr(start, end - start), id->substr(0, 2), id->substr(2));
      start = end + 1;
    }
  }
  if (std::string link = debuglink_name(path); !link.empty())
    places += fmt::format("{}.gnu_debuglink {}", places.empty() ? "" : " or ", link);
  return places.empty() ? "no build-id and no .gnu_debuglink to find it by" : places;
}

}  // namespace graft
