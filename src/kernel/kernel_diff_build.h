// graft build --kernel --from-diff: kpatch-build's job done with graft's
// differ. A fix to the running kernel's source becomes a livepatch module,
// in named passes (kernel_diff_build.cc):
//   prepare_tree      the source, configured and prepared once (kernel_tree.h)
//   check_diff        the diff applies; its files map to objects (diff_objects.h),
//                     a changed header to the objects including it (header_users.h)
//   compile_objects   only those objects, original and patched
//   compare_objects   src/differ: changed functions, refusals, line-only changes;
//                     each object's owner, vmlinux or a module (object_owner.h)
//   locate_functions  each changed function in the image or the shipped module
//                     (shipped_module.h; its code must match the original
//                     object), traceable, its fingerprint kept
//   assemble          the changed functions and what they need; the kernel's
//                     tables (exceptions, bugs, alternatives, jump labels,
//                     static calls, ftrace, ORC, thunks) carried for them
//   resolve_symbols   everything else is the kernel's: exported, or a livepatch
//                     symbol of vmlinux or of a patched module (patch_symbols.h)
//   kbuild_module     the object and a generated klp_patch stub, linked by
//                     Kbuild; converted as --from-source modules are
#pragma once
#include <map>
#include <string>
#include <vector>

#include "kernel/kernel_build.h"

namespace graft::kernel {

struct KernelDiffOptions {
  std::string diff;     // FIX.patch
  std::string source;   // the kernel's source tree (pristine)
  std::string config;   // "": the .config of the release's headers
  std::string output;   // NAME.ko
  std::string name;
  std::string release;  // uname -r of the target kernel
  std::string cache;    // "": $GRAFT_KERNEL_CACHE or /var/cache/graft/kernel
  bool replace = false;
  std::string keep_work;
};

struct KernelFunctionReport {
  std::string name;
  unsigned sympos = 0;
  std::string source;  // the C file it comes from
  std::string object;  // "" for vmlinux, else its module
  std::string reason;  // "changed directly", "inlined change", "changed", "new function"
  std::string detail;
};

struct KernelDiffResult {
  KernelBuildResult build;
  std::vector<KernelFunctionReport> functions;
  std::vector<std::string> notes;
  std::map<std::string, size_t> carried;  // table section -> entries carried
  bool tree_cached = false;
  double prepare_seconds = 0, compile_seconds = 0;
};

KernelDiffResult build_kernel_patch_from_diff(const KernelDiffOptions& options, const BuildProgress& progress);

}  // namespace graft::kernel
