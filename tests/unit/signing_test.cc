// Signatures of patch files: the trailer keeps the file valid and the id
// unchanged, verifies only for the exact bytes signed, and the policy tells
// unsigned, unknown key and bad signature apart.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/error.h"
#include "common/file.h"
#include "patch/patch.h"
#include "security/policy.h"
#include "security/signing.h"

namespace graft {
namespace {

Bytes sample_file() {
  Patch p;
  p.name = "sample";
  p.target = {"/usr/bin/x", "0123456789abcdef", true};
  p.layout.code_size = 16;
  p.layout.rodata_offset = kPageSize;
  p.layout.data_offset = 2 * kPageSize;
  p.image.assign(p.layout.file_size(), 0x90);
  FunctionReplacement f;
  f.symbol = "handle";
  f.address = 0x1000;
  f.size = 32;
  f.sha256 = std::string(64, 'a');
  f.replacement = "fixed";
  f.replacement_size = 16;
  p.functions.push_back(f);
  return serialize_patch(p);
}

class Signing : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/graft-signing-test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    ops_ = generate_key_pair(dir_ + "/ops", "ops");
    other_ = generate_key_pair(dir_ + "/other", "other");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
  PublicKey ops_, other_;
};

TEST_F(Signing, SignedFileKeepsIdAndVerifies) {
  Bytes file = sample_file();
  Patch unsigned_patch = parse_patch(file, "t.graft");
  EXPECT_FALSE(unsigned_patch.signature);
  Bytes signed_file = sign_patch_file(file, "t.graft", load_secret_key(dir_ + "/ops.key"));
  Patch p = parse_patch(signed_file, "t.graft");
  ASSERT_TRUE(p.signature);
  EXPECT_EQ(p.signature->signer, "ops");
  EXPECT_EQ(p.id(), unsigned_patch.id());
  EXPECT_TRUE(signature_valid(p));
  // Signing again replaces the signature.
  Bytes resigned = sign_patch_file(signed_file, "t.graft", load_secret_key(dir_ + "/other.key"));
  EXPECT_EQ(resigned.size(), signed_file.size() + 2);  // "other" vs "ops"
  EXPECT_EQ(parse_patch(resigned, "t.graft").signature->signer, "other");
}

TEST_F(Signing, EveryFlippedSignatureByteIsCaught) {
  Bytes signed_file = sign_patch_file(sample_file(), "t.graft", load_secret_key(dir_ + "/ops.key"));
  size_t trailer = sample_file().size();
  for (size_t i = trailer + 16; i < signed_file.size(); ++i) {
    Bytes bad = signed_file;
    bad[i] ^= 0x01;
    try {
      EXPECT_FALSE(signature_valid(parse_patch(bad, "t.graft"))) << "byte " << i;
    } catch (const Error&) {
      // A name that became a control character: refused outright.
    }
  }
}

TEST_F(Signing, MalformedTrailersAreRefused) {
  Bytes signed_file = sign_patch_file(sample_file(), "t.graft", load_secret_key(dir_ + "/ops.key"));
  Bytes cut(signed_file.begin(), signed_file.end() - 1);
  EXPECT_THROW(parse_patch(cut, "t.graft"), Error);
  Bytes longer = signed_file;
  longer.push_back('x');
  EXPECT_THROW(parse_patch(longer, "t.graft"), Error);
  Bytes bad_magic = signed_file;
  bad_magic[sample_file().size()] ^= 1;
  EXPECT_THROW(parse_patch(bad_magic, "t.graft"), Error);
}

TEST_F(Signing, PolicyReasons) {
  Policy policy;
  policy.source = "test-policy";
  policy.require_signature = true;
  policy.trusted_keys.push_back(ops_);
  Bytes file = sample_file();
  auto reason = [&](const Bytes& f) { return refusal(policy, parse_patch(f, "t.graft")).value_or("accepted"); };
  EXPECT_EQ(reason(file).rfind("unsigned", 0), 0u);
  EXPECT_EQ(reason(sign_patch_file(file, "t", load_secret_key(dir_ + "/other.key"))).rfind("unknown key", 0), 0u);
  Bytes good = sign_patch_file(file, "t", load_secret_key(dir_ + "/ops.key"));
  EXPECT_EQ(reason(good), "accepted");
  Bytes forged = good;
  forged[forged.size() - 3 - 10] ^= 0x40;  // inside the signature
  EXPECT_EQ(reason(forged).rfind("bad signature", 0), 0u);
  // Without a requirement, a bad signature is still refused.
  policy.require_signature = false;
  EXPECT_EQ(reason(forged).rfind("bad signature", 0), 0u);
  EXPECT_EQ(reason(file), "accepted");
}

TEST_F(Signing, KeyFiles) {
  EXPECT_THROW(generate_key_pair(dir_ + "/ops", "again"), Error);  // never overwritten
  EXPECT_EQ(load_public_key(dir_ + "/ops.pub").key, ops_.key);
  EXPECT_THROW(load_public_key(dir_ + "/ops.key"), Error);
  chmod((dir_ + "/ops.key").c_str(), 0640);
  EXPECT_THROW(load_secret_key(dir_ + "/ops.key"), Error);
  EXPECT_THROW(parse_public_key("graft-ed25519 abcd name", "inline"), Error);
}

}  // namespace
}  // namespace graft
