// What a graft livepatch module was built for, carried inside the module in
// the non-allocated section .graft.kernel (the module loader ignores it):
// the kernel release, and for every patched function its address, extent
// and original bytes in the image, with the byte ranges the kernel rewrites
// at boot. `graft apply --kernel` checks the running kernel against it
// before loading anything (run_pre_check.h).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/hash.h"

namespace graft::kernel {

inline constexpr const char* kManifestSection = ".graft.kernel";

// A byte range of a function that the running kernel may legitimately hold
// differently from the image: patched at boot by ftrace, alternatives,
// paravirt, retpoline/return thunks, jump labels or static calls.
struct MaskedRange {
  uint32_t offset = 0, length = 0;
  std::string reason;  // "ftrace", "alternative", ...
};

struct FunctionFingerprint {
  std::string object;         // "" for vmlinux, else the module (klp_object) name
  std::string name;
  unsigned sympos = 0;
  // vmlinux: the link-time address (System.map), the extent up to the
  // next symbol and that symbol. A module's: the offset in its section,
  // the symbol's size, no next symbol.
  uint64_t address = 0;
  uint64_t size = 0;
  std::string next_symbol;
  Bytes bytes;                // the image's bytes
  std::vector<MaskedRange> masked;
  // Offsets of 4-byte fields holding absolute kernel addresses: KASLR adds
  // its offset to them at boot.
  std::vector<uint32_t> absolute32;
  // Offsets of 4-byte %rip-relative displacements to per-CPU variables,
  // which x86-64 links at addresses from 0: KASLR subtracts its offset from
  // them at boot (the kernel's inverse relocations).
  std::vector<uint32_t> percpu_pcrel32;
};

struct KernelPatchManifest {
  int format = 1;
  std::string name;          // the livepatch (and module) name
  std::string release;       // uname -r
  std::string anchor_symbol = "_text";
  uint64_t anchor_address = 0;  // its link-time address: the KASLR offset's base
  bool replace = false;      // cumulative (atomic replace)
  std::vector<FunctionFingerprint> functions;
  std::vector<std::string> livepatch_symbols;  // .klp.sym.* names the module uses
  // Each patched module's file under /lib/modules/RELEASE/ (kernel/crypto/af_alg.ko).
  std::map<std::string, std::string> module_files;
};

std::string manifest_to_json(const KernelPatchManifest& m);
// Validates every field; `origin` names the module in messages.
KernelPatchManifest manifest_from_json(const std::string& text, const std::string& origin);
// Reads the manifest section of a module file; `display` names it in
// messages (default: the path).
KernelPatchManifest read_module_manifest(const std::string& module_path, const std::string& display = {});

}  // namespace graft::kernel
