// A kernel the patches are built for, as the test machine's cache holds it
// (scripts/kernel/fetch.sh): its System.map, its decompressed image, the
// Kbuild tree of its headers and the symbols it exports. Decides whether a
// function can be patched and records what the run-pre check compares.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "kernel/kernel_symbols.h"
#include "kernel/manifest.h"

namespace graft::kernel {

struct KernelPaths {
  std::string release;
  std::string headers;     // the Kbuild tree (linux-headers-RELEASE)
  std::string system_map;
  std::string image;       // the decompressed vmlinux (ELF, symbols stripped)
  std::string modules;     // lib/modules/RELEASE of the image package

  // The layout of scripts/kernel/fetch.sh under `cache`
  // ($GRAFT_KERNEL_CACHE, default /var/cache/graft/kernel).
  static KernelPaths in_cache(const std::string& release, const std::string& cache = {});
};

class KernelImage {
 public:
  explicit KernelImage(KernelPaths paths);
  const KernelPaths& paths() const { return paths_; }
  const SymbolTable& symbols() const { return symbols_; }
  bool exported(const std::string& name) const { return exporter(name) == "vmlinux"; }
  // "vmlinux", the exporting module's name, or "" when nothing exports it.
  std::string exporter(const std::string& name) const {
    auto it = exported_.find(name);
    return it == exported_.end() ? "" : it->second;
  }
  uint64_t anchor_address() const;  // _text
  // The image's bytes at a link-time address.
  Bytes read(uint64_t address, size_t size) const { return image_->read_vaddr(address, size); }

  // The function livepatch would patch for NAME,POS, with its fingerprint.
  // Throws, naming the function and the reason, if it cannot be patched:
  // missing or ambiguous, not code, __init, or without an ftrace site.
  FunctionFingerprint patchable_function(const std::string& name, unsigned pos) const;

 private:
  void load_boot_patch_sites();
  void add_relative_sites(const char* start, const char* stop, size_t entry_size, const char* reason,
                          bool has_length);

  KernelPaths paths_;
  SymbolTable symbols_;
  std::map<std::string, std::string> exported_;
  std::unique_ptr<ElfFile> image_;
  std::set<uint64_t> ftrace_sites_;
  // Address -> (length or 0 = one instruction, reason): code the kernel
  // rewrites at boot or at run time.
  std::vector<std::tuple<uint64_t, uint32_t, std::string>> boot_patch_sites_;
  uint64_t init_text_start_ = 0, init_text_end_ = 0;
  uint64_t image_start_ = 0, image_end_ = 0;
  uint64_t percpu_start_ = 0, percpu_end_ = 0;  // empty without per-CPU symbols
};

}  // namespace graft::kernel
