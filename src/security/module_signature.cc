#include "security/module_signature.h"

#include <sodium.h>

#include <cstring>

#include "common/error.h"

namespace graft {

namespace {

constexpr char kTrailerMagic[] = "~graft signature appended~\n";
constexpr size_t kTrailerMagicSize = sizeof kTrailerMagic - 1;
constexpr char kContext[] = "graft kernel module signature v1";  // with its NUL
constexpr uint8_t kElfMagic[4] = {0x7f, 'E', 'L', 'F'};

uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

}  // namespace

SignedModule parse_signed_module(std::span<const uint8_t> file, const std::string& name) {
  if (file.size() < sizeof kElfMagic || std::memcmp(file.data(), kElfMagic, sizeof kElfMagic) != 0)
    fail("{}: not a kernel module (no ELF header)", name);
  SignedModule m;
  m.module = file;
  if (file.size() >= kTrailerMagicSize + 4 &&
      std::memcmp(file.data() + file.size() - kTrailerMagicSize, kTrailerMagic, kTrailerMagicSize) == 0) {
    size_t size_at = file.size() - kTrailerMagicSize - 4;
    uint32_t block = le32(file.data() + size_at);
    if (size_at < sizeof kElfMagic || block == 0 || block > size_at - sizeof kElfMagic)
      fail("{}: malformed graft signature trailer (block of {} bytes)", name, block);
    m.module = file.first(size_at - block);
    m.signature = parse_signature_block(file.subspan(size_at - block, block), name);
  }
  m.sha256 = sha256_hex(m.module);
  return m;
}

namespace {

Bytes signed_message(const SignedModule& m, const PatchSignature& s) {
  Bytes msg(kContext, kContext + sizeof kContext);
  Bytes digest = from_hex(m.sha256, "module sha256");
  msg.insert(msg.end(), digest.begin(), digest.end());
  msg.insert(msg.end(), s.public_key.begin(), s.public_key.end());
  msg.insert(msg.end(), s.signer.begin(), s.signer.end());
  return msg;
}

}  // namespace

Bytes sign_module_file(std::span<const uint8_t> file, const std::string& name, const SecretKey& key) {
  if (sodium_init() < 0) fail("libsodium: initialisation failed");
  SignedModule m = parse_signed_module(file, name);
  PatchSignature s;
  s.public_key = key.public_key().key;
  s.signer = key.name;
  Bytes msg = signed_message(m, s);
  s.signature.resize(crypto_sign_BYTES);
  crypto_sign_detached(s.signature.data(), nullptr, msg.data(), msg.size(), key.key.data());
  Bytes out = append_signature(m.module, s);
  uint32_t block = static_cast<uint32_t>(out.size() - m.module.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(block >> (8 * i)));
  out.insert(out.end(), kTrailerMagic, kTrailerMagic + kTrailerMagicSize);
  return out;
}

bool module_signature_valid(const SignedModule& m) {
  if (sodium_init() < 0) fail("libsodium: initialisation failed");
  if (!m.signature) return false;
  const PatchSignature& s = *m.signature;
  if (s.public_key.size() != crypto_sign_PUBLICKEYBYTES || s.signature.size() != crypto_sign_BYTES) return false;
  Bytes msg = signed_message(m, s);
  return crypto_sign_verify_detached(s.signature.data(), msg.data(), msg.size(), s.public_key.data()) == 0;
}

}  // namespace graft
