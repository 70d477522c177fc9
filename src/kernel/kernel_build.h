// graft build --kernel --from-source: a hand-written patch becomes a
// livepatch module for one kernel release, in named passes:
//   collect_declarations  compile the patch alone; read its GRAFT_* records
//   check_targets         each replaced function must be patchable in the
//                         image (kernel_image.h); its fingerprint is kept
//   generate_module       a C file that includes the patch and adds the
//                         klp_func / klp_object / klp_patch structures
//   kbuild_module         Kbuild against the release's headers
//   convert_module        non-exported references become livepatch
//                         relocations; the manifest is attached (klp_convert.h)
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "kernel/klp_convert.h"
#include "kernel/manifest.h"

namespace graft::kernel {

struct KernelBuildOptions {
  std::string source;         // the patch's C file
  std::string output;         // the module to write (NAME.ko)
  std::string name;           // livepatch name ("": the output's base name)
  std::string release;        // uname -r of the target kernel
  std::string cache;          // "": $GRAFT_KERNEL_CACHE or /var/cache/graft/kernel
  bool replace = false;       // cumulative, as GRAFT_CUMULATIVE
  std::string keep_work;      // keep the work directory here
};

struct KernelBuildResult {
  KernelPatchManifest manifest;
  KlpConversion conversion;
  std::string module_path;
};

using BuildProgress = std::function<void(const std::string&)>;

KernelBuildResult build_kernel_patch(const KernelBuildOptions& options, const BuildProgress& progress);

// A livepatch name from a module file name: its base name without ".ko",
// '-' turned into '_' (as Kbuild names modules); throws if not valid.
std::string livepatch_name_for(const std::string& output);

}  // namespace graft::kernel
