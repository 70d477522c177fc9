// graft build --kernel --from-source: a hand-written patch becomes a
// livepatch module for one kernel release, in named passes:
//   collect_declarations  compile the patch alone; read its GRAFT_* records
//   check_targets         each replaced function must be patchable in the
//                         image (kernel_image.h) or in the shipped module it
//                         belongs to (shipped_module.h); its fingerprint is kept
//   generate_module       a C file that includes the patch and adds the
//                         klp_func / klp_object / klp_patch structures
//   kbuild_module         Kbuild against the release's headers
//   convert_module        non-exported references, and every reference to a
//                         replaced module's symbols, become livepatch
//                         relocations (patch_symbols.h, klp_convert.h); the
//                         manifest is attached
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <filesystem>
#include <map>

#include "kernel/kernel_image.h"
#include "kernel/klp_convert.h"
#include "kernel/manifest.h"
#include "kernel/patch_source.h"

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

// What both kinds of kernel build share.

// The work directory: `keep_work` if given (kept), else a temporary one
// removed at the end.
struct WorkDir {
  explicit WorkDir(const std::string& keep_work);
  ~WorkDir();
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  std::filesystem::path path;
  bool keep;
};

// The klp_func / klp_object / klp_patch structures of a livepatch module
// and its init and exit, as C: each replacement's `replacement` names the
// new function (a symbol the module defines).
std::string klp_structures(const std::vector<KernelReplacement>& replacements,
                           const std::map<KernelCallback, std::string>& callbacks, bool replace,
                           const std::string& built_from);

// Runs Kbuild for the external module in `dir` against the release's
// headers; `target` "" builds the modules. Unresolved symbols are
// warnings: the non-exported ones become livepatch symbols afterwards.
void kbuild(const KernelPaths& kernel, const std::filesystem::path& dir, const std::string& target,
            const std::string& what);

// How the convert pass names an undefined symbol of the built module:
// the symbol itself for the module loader, or its .klp.sym.OBJECT.NAME,POS
// name; throws, naming the symbol, when the patch cannot reach it.
using LivepatchNaming = std::function<std::string(const std::string& symbol)>;

// The convert pass: every undefined symbol of `module` is named by
// `naming` (symbols already named .klp.sym.* as they are), the livepatch
// ones recorded in the manifest, which is then attached.
KlpConversion convert_module(const std::string& module, const LivepatchNaming& naming, KernelPatchManifest& m,
                             const BuildProgress& progress);

// A livepatch name from a module file name: its base name without ".ko",
// '-' turned into '_' (as Kbuild names modules); throws if not valid.
std::string livepatch_name_for(const std::string& output);

}  // namespace graft::kernel
