// Ed25519 signatures of patch files (libsodium).
//
// A key pair is two one-line text files: NAME.pub, "graft-ed25519 <public
// key, 64 hex digits> <name>", and NAME.key, "graft-ed25519-secret <secret
// key, 128 hex digits> <name>", readable by its owner only. The signature
// is a trailer after the patch image (src/patch/patch_file.cc), so an
// unsigned file stays valid and signing keeps the patch id. What is signed:
// "graft patch signature v1\0", the SHA-256 of the unsigned file (32
// bytes), the public key and the signer's name.
#pragma once
#include <string>

#include "common/hash.h"
#include "patch/patch.h"

namespace graft {

struct PublicKey {
  Bytes key;  // 32 bytes
  std::string name;
  // First 16 hex digits of the SHA-256 of the key: what messages show.
  std::string id() const;
};

struct SecretKey {
  Bytes key;  // 64 bytes (seed and public key, libsodium's layout)
  std::string name;
  PublicKey public_key() const;
};

// Writes PREFIX.key (mode 0600) and PREFIX.pub; refuses to overwrite.
PublicKey generate_key_pair(const std::string& prefix, const std::string& name);
// "graft-ed25519 HEX NAME", from a file or given inline.
PublicKey parse_public_key(const std::string& line, const std::string& where);
PublicKey load_public_key(const std::string& path);
// Refuses a secret key file that others can read.
SecretKey load_secret_key(const std::string& path);

// The patch file (signed or not) signed by `key`: its unsigned part and a
// new trailer.
Bytes sign_patch_file(std::span<const uint8_t> file, const std::string& name, const SecretKey& key);

// Whether the patch's signature verifies against the key it carries (not
// whether that key is trusted: see Policy).
bool signature_valid(const Patch& patch);

}  // namespace graft
