#include "security/signing.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/error.h"
#include "common/file.h"

namespace graft {

namespace {

constexpr const char* kPublicTag = "graft-ed25519";
constexpr const char* kSecretTag = "graft-ed25519-secret";
constexpr char kContext[] = "graft patch signature v1";  // with its NUL

void init_sodium() {
  if (sodium_init() < 0) fail("libsodium: initialisation failed");
}

Bytes signed_message(const std::string& patch_sha256, const Bytes& public_key,
                     const std::string& signer) {
  Bytes m(kContext, kContext + sizeof kContext);
  Bytes digest = from_hex(patch_sha256, "patch sha256");
  m.insert(m.end(), digest.begin(), digest.end());
  m.insert(m.end(), public_key.begin(), public_key.end());
  m.insert(m.end(), signer.begin(), signer.end());
  return m;
}

// "TAG HEX NAME": the name may hold spaces, never control characters.
void parse_line(const std::string& text, const char* tag, size_t key_size, Bytes& key,
                std::string& name, const std::string& where) {
  std::string line = text.substr(0, text.find('\n'));
  std::istringstream in(line);
  std::string t, hex;
  in >> t >> hex;
  std::getline(in >> std::ws, name);
  if (t != tag) fail("{}: not a graft {} key (expected `{} ...')", where,
                     std::strcmp(tag, kPublicTag) == 0 ? "public" : "secret", tag);
  if (hex.size() != 2 * key_size) fail("{}: malformed key", where);
  key = from_hex(hex, "key");
  if (name.empty() || name.size() > 256) fail("{}: the key has no name", where);
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) fail("{}: control character in the key's name", where);
}

void write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) fail("{}: {}", path, errno_text(errno));
  ssize_t n = write(fd, text.data(), text.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) fail("{}: {}", path, errno_text(err));
}

}  // namespace

std::string PublicKey::id() const { return sha256_hex(key).substr(0, 16); }

PublicKey SecretKey::public_key() const {
  return {Bytes(key.begin() + crypto_sign_SEEDBYTES, key.end()), name};
}

PublicKey generate_key_pair(const std::string& prefix, const std::string& name) {
  init_sodium();
  Bytes pk(crypto_sign_PUBLICKEYBYTES), sk(crypto_sign_SECRETKEYBYTES);
  crypto_sign_keypair(pk.data(), sk.data());
  PublicKey pub{pk, name};
  std::string check;
  parse_line(fmt::format("{} {} {}", kPublicTag, to_hex(pk), name), kPublicTag, pk.size(), pub.key,
             check, "key name");
  write_new_file(prefix + ".key", fmt::format("{} {} {}\n", kSecretTag, to_hex(sk), name), 0600);
  sodium_memzero(sk.data(), sk.size());
  write_new_file(prefix + ".pub", fmt::format("{} {} {}\n", kPublicTag, to_hex(pk), name), 0644);
  return pub;
}

PublicKey parse_public_key(const std::string& line, const std::string& where) {
  PublicKey k;
  parse_line(line, kPublicTag, crypto_sign_PUBLICKEYBYTES, k.key, k.name, where);
  return k;
}

PublicKey load_public_key(const std::string& path) {
  return parse_public_key(read_text_file(path, 4096), path);
}

SecretKey load_secret_key(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) fail("{}: {}", path, errno_text(errno));
  if (st.st_mode & 077)
    fail("{}: the secret key is accessible to other users (mode {:o}); chmod 600 it", path,
         st.st_mode & 0777);
  SecretKey k;
  std::string text = read_text_file(path, 4096);
  parse_line(text, kSecretTag, crypto_sign_SECRETKEYBYTES, k.key, k.name, path);
  sodium_memzero(text.data(), text.size());
  return k;
}

Bytes sign_patch_file(std::span<const uint8_t> file, const std::string& name, const SecretKey& key) {
  init_sodium();
  Patch p = parse_patch(file, name);  // signs only well-formed patches
  PatchSignature s;
  s.public_key = key.public_key().key;
  s.signer = key.name;
  Bytes m = signed_message(p.sha256, s.public_key, s.signer);
  s.signature.resize(crypto_sign_BYTES);
  crypto_sign_detached(s.signature.data(), nullptr, m.data(), m.size(), key.key.data());
  return append_signature(unsigned_part(file, name), s);
}

bool signature_valid(const Patch& patch) {
  init_sodium();
  if (!patch.signature) return false;
  const PatchSignature& s = *patch.signature;
  if (s.public_key.size() != crypto_sign_PUBLICKEYBYTES || s.signature.size() != crypto_sign_BYTES)
    return false;
  Bytes m = signed_message(patch.sha256, s.public_key, s.signer);
  return crypto_sign_verify_detached(s.signature.data(), m.data(), m.size(), s.public_key.data()) == 0;
}

}  // namespace graft
