// The declarations of a hand-written kernel patch (include/graft/kernel_patch.h),
// read back from a first compilation of it: one "graft:KIND:A:B" string
// each in the section .graft.klp.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace graft::kernel {

struct KernelReplacement {
  std::string target;       // the kernel function
  unsigned sympos = 0;      // its kallsyms position, 0: unique
  std::string replacement;  // the patch's function
  // "" for vmlinux (or, for GRAFT_REPLACE, the one module defining
  // `target` when vmlinux does not: kernel_build.cc), else the module.
  std::string object;
};

enum class KernelCallback { PrePatch, PostPatch, PreUnpatch, PostUnpatch };

struct KernelPatchSource {
  std::vector<KernelReplacement> replacements;
  std::map<KernelCallback, std::string> callbacks;  // kind -> function
  std::map<std::string, unsigned> symbol_positions;  // GRAFT_SYMBOL_POS
  bool cumulative = false;
};

// Parses the records of the object `object` (compiled from `source`).
KernelPatchSource read_patch_declarations(const std::string& object, const std::string& source);

const char* callback_field(KernelCallback c);  // klp_callbacks member name

}  // namespace graft::kernel
