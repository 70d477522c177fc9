// graft signatures of kernel livepatch modules: the trailer follows the ELF
// bytes and leaves them as they were, verifies only for the module signed,
// is judged by the same policy as patch files, and another module's
// signature block does not verify.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "common/error.h"
#include "patch/patch.h"
#include "security/module_signature.h"
#include "security/policy.h"

namespace graft {
namespace {

Bytes sample_module() {
  Bytes m = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
  for (int i = 0; i < 500; ++i) m.push_back(static_cast<uint8_t>(i * 7));
  return m;
}

class ModuleSignature : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/graft-module-signature-test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    ops_ = generate_key_pair(dir_ + "/ops", "ops");
    generate_key_pair(dir_ + "/other", "other");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  SecretKey key(const char* name) const { return load_secret_key(dir_ + "/" + name + ".key"); }
  std::string dir_;
  PublicKey ops_;
};

TEST_F(ModuleSignature, TrailerFollowsTheUnchangedModuleAndVerifies) {
  Bytes module = sample_module();
  SignedModule plain = parse_signed_module(module, "p.ko");
  EXPECT_FALSE(plain.signature);
  EXPECT_EQ(plain.module.size(), module.size());

  Bytes file = sign_module_file(module, "p.ko", key("ops"));
  SignedModule m = parse_signed_module(file, "p.ko");
  ASSERT_TRUE(m.signature);
  EXPECT_EQ(Bytes(m.module.begin(), m.module.end()), module);
  EXPECT_EQ(m.sha256, plain.sha256);
  EXPECT_EQ(m.signature->signer, "ops");
  EXPECT_TRUE(module_signature_valid(m));

  // Signing again replaces the signature instead of signing the old one.
  Bytes again = sign_module_file(file, "p.ko", key("other"));
  SignedModule m2 = parse_signed_module(again, "p.ko");
  EXPECT_EQ(Bytes(m2.module.begin(), m2.module.end()), module);
  EXPECT_EQ(m2.signature->signer, "other");
  EXPECT_TRUE(module_signature_valid(m2));
}

TEST_F(ModuleSignature, ChangedModuleOrForeignBlockDoesNotVerify) {
  Bytes file = sign_module_file(sample_module(), "p.ko", key("ops"));
  Bytes changed = file;
  changed[100] ^= 1;
  EXPECT_FALSE(module_signature_valid(parse_signed_module(changed, "p.ko")));

  // Another module's signature block, moved onto this one.
  Bytes other = sample_module();
  other.back() ^= 1;
  SignedModule m = parse_signed_module(file, "p.ko");
  Bytes forged = append_signature(other, *m.signature);
  uint32_t block = static_cast<uint32_t>(forged.size() - other.size());
  for (int i = 0; i < 4; ++i) forged.push_back(static_cast<uint8_t>(block >> (8 * i)));
  const std::string magic = "~graft signature appended~\n";
  forged.insert(forged.end(), magic.begin(), magic.end());
  ASSERT_TRUE(parse_signed_module(forged, "p.ko").signature);
  EXPECT_FALSE(module_signature_valid(parse_signed_module(forged, "p.ko")));
}

TEST_F(ModuleSignature, MalformedInputIsRefusedByName) {
  EXPECT_THROW(parse_signed_module(Bytes{'G', 'R', 'A', 'F', 'T'}, "x.ko"), Error);
  Bytes file = sign_module_file(sample_module(), "p.ko", key("ops"));
  // A block size reaching into the ELF header.
  Bytes bad = file;
  size_t size_at = bad.size() - 27 - 4;
  bad[size_at] = 0xff;
  bad[size_at + 1] = 0xff;
  try {
    parse_signed_module(bad, "bad.ko");
    FAIL() << "parsed a trailer whose block covers the module";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.ko: malformed graft signature trailer"), std::string::npos) << e.what();
  }
  // Cut inside the block.
  Bytes cut(file.begin(), file.end());
  cut.erase(cut.end() - 40, cut.end() - 31);
  EXPECT_THROW(parse_signed_module(cut, "cut.ko"), Error);
}

TEST_F(ModuleSignature, PolicyJudgesModulesLikePatchFiles) {
  Policy require;
  require.source = "/etc/graft/policy";
  require.require_signature = true;
  require.trusted_keys = {ops_};
  Bytes module = sample_module();
  auto why = refusal(require, parse_signed_module(module, "p.ko"), "p.ko");
  ASSERT_TRUE(why);
  EXPECT_EQ(why->rfind("unsigned:", 0), 0u) << *why;

  Bytes by_ops = sign_module_file(module, "p.ko", key("ops"));
  EXPECT_FALSE(refusal(require, parse_signed_module(by_ops, "p.ko"), "p.ko"));

  Bytes by_other = sign_module_file(module, "p.ko", key("other"));
  why = refusal(require, parse_signed_module(by_other, "p.ko"), "p.ko");
  ASSERT_TRUE(why);
  EXPECT_EQ(why->rfind("unknown key:", 0), 0u) << *why;

  // A bad signature is refused even when none is required.
  by_ops[50] ^= 1;
  why = refusal(Policy{}, parse_signed_module(by_ops, "p.ko"), "p.ko");
  ASSERT_TRUE(why);
  EXPECT_EQ(why->rfind("bad signature:", 0), 0u) << *why;
}

}  // namespace
}  // namespace graft
