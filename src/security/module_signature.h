// graft's signature of a kernel livepatch module (graft build --kernel):
// the same Ed25519 keys and policy as patch files (signing.h, policy.h).
//
// The signature follows the module's ELF bytes, found from the end of the
// file: the signature block of patch files (patch.h: "GRAFTSIG", version,
// signer size, public key, signature, signer), its size (u32, little
// endian), then "~graft signature appended~\n". The kernel's own module
// signature ends in "~Module signature appended~\n" instead, so the kernel
// sees a graft-signed module as unsigned, as before; graft loads the module
// without the trailer anyway. What is signed: "graft kernel module
// signature v1\0", the SHA-256 of the module without the trailer, the
// public key and the signer's name; a patch file's signature (another
// context) does not verify on a module.
#pragma once
#include <optional>
#include <span>
#include <string>

#include "common/hash.h"
#include "patch/patch.h"
#include "security/signing.h"

namespace graft {

struct SignedModule {
  std::span<const uint8_t> module;  // the ELF bytes, without graft's trailer
  std::string sha256;               // of `module`
  std::optional<PatchSignature> signature;
};

// `file` (a kernel module, signed by graft or not), split; throws
// graft::Error naming `name` if it is not an ELF file or its trailer is
// malformed.
SignedModule parse_signed_module(std::span<const uint8_t> file, const std::string& name);
// The module signed by `key` (an earlier graft signature is replaced).
Bytes sign_module_file(std::span<const uint8_t> file, const std::string& name, const SecretKey& key);
// Whether the signature verifies against the key it carries (not whether
// that key is trusted: see Policy).
bool module_signature_valid(const SignedModule& module);

}  // namespace graft
