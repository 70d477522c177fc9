// Ksplice's run-pre check for kernel patches: before a module is loaded,
// the running kernel must be the one the patch was built for, function by
// function. For each patched function (manifest.h):
//  - the running release is the one built for (uname -r);
//  - /proc/kallsyms puts it at its image address plus the KASLR offset
//    (taken from _text), and the symbol that ends it in the image ends it
//    in the running kernel too (same extent);
//  - its bytes in memory (/proc/kcore) equal the image's, except where the
//    kernel rewrites code at boot (ftrace site, alternatives, paravirt,
//    retpoline and return thunks, jump labels, static calls, lock
//    prefixes), with KASLR's offset added to absolute addresses and taken
//    from %rip-relative displacements to per-CPU variables.
// A module's function (livepatch patches it when the module loads):
//  - module loaded: /proc/kallsyms gives it (NAME [MODULE]), nothing of the
//    module lies inside its extent, and its bytes equal the shipped
//    module's except the fields the module loader relocated and the sites
//    the kernel rewrites;
//  - not loaded: the module file under /lib/modules/RELEASE, if there,
//    must hold the same bytes; livepatch patches the module when it comes.
// Any difference refuses the patch, naming the function and the offset.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernel/manifest.h"

namespace graft::kernel {

struct RunPreReport {
  int64_t kaslr_offset = 0;
  struct Function {
    std::string object;  // "" for vmlinux
    std::string name;
    // "running" (compared in memory), "module file" (not loaded: compared
    // with its file), "not loaded" (no file either: checked by nothing).
    std::string checked = "running";
    uint64_t address = 0;  // running address
    uint64_t size = 0;
    size_t bytes_compared = 0, bytes_masked = 0, relocated_fields = 0;
  };
  std::vector<Function> functions;
};

struct RunningKernel {
  std::string release;   // uname -r
  std::string kallsyms = "/proc/kallsyms";
  std::string kcore = "/proc/kcore";
  std::string modules = "";  // /lib/modules/RELEASE
  static RunningKernel current();
};

RunPreReport run_pre_check(const KernelPatchManifest& manifest, const RunningKernel& kernel);

}  // namespace graft::kernel
