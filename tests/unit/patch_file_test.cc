// The patch-file parser is graft's first line of defence: every malformed
// input must be refused with a message, never crash or be half-accepted.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "patch/patch.h"

namespace graft {
namespace {

Patch sample() {
  Patch p;
  p.name = "sample";
  p.target = {"/usr/bin/x", "0123456789abcdef", true};
  p.layout.code_size = 16;
  p.layout.rodata_offset = kPageSize;
  p.layout.rodata_size = 8;
  p.layout.data_offset = 2 * kPageSize;
  p.layout.data_size = 8;
  p.layout.bss_size = 8;
  p.image.assign(p.layout.file_size(), 0x90);
  FunctionReplacement f;
  f.symbol = "handle";
  f.address = 0x1000;
  f.size = 32;
  f.sha256 = std::string(64, 'a');
  f.replacement = "fixed_handle";
  f.replacement_offset = 0;
  f.replacement_size = 16;
  p.functions.push_back(f);
  p.externals.push_back({"printf", ExternalSymbol::Where::Library, "", 0});
  p.relocations.push_back({4, R_X86_64_PC32, -4, 0, 0});
  p.relocations.push_back({kPageSize, R_X86_64_64, 0, -1, 2 * kPageSize});
  return p;
}

Bytes serialized(const Patch& p) { return serialize_patch(p); }

TEST(PatchFile, RoundTrip) {
  Bytes file = serialized(sample());
  Patch back = parse_patch(file, "t.graft");
  EXPECT_EQ(back.name, "sample");
  EXPECT_EQ(back.functions.size(), 1u);
  EXPECT_EQ(back.functions[0].symbol, "handle");
  EXPECT_EQ(back.relocations.size(), 2u);
  EXPECT_EQ(back.image.size(), sample().layout.file_size());
  EXPECT_EQ(back.id().size(), 12u);
}

TEST(PatchFile, EveryTruncationIsRefused) {
  Bytes file = serialized(sample());
  for (size_t n = 0; n < file.size(); n += 7) {
    std::span<const uint8_t> cut(file.data(), n);
    EXPECT_THROW(parse_patch(cut, "t.graft"), Error) << "length " << n;
  }
}

TEST(PatchFile, TrailingBytesAreRefused) {
  Bytes file = serialized(sample());
  file.push_back(0);
  EXPECT_THROW(parse_patch(file, "t.graft"), Error);
}

TEST(PatchFile, BadMagicAndVersion) {
  Bytes file = serialized(sample());
  Bytes bad = file;
  bad[0] = 'X';
  EXPECT_THROW(parse_patch(bad, "t.graft"), Error);
  bad = file;
  bad[8] = 99;
  try {
    parse_patch(bad, "t.graft");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("version 99"), std::string::npos);
  }
}

TEST(PatchFile, CorruptManifestBytesNeverCrash) {
  Bytes file = serialized(sample());
  // Flip each byte of the manifest in turn: refused or parsed, never a crash.
  for (size_t i = 24; i < file.size() - sample().image.size(); ++i) {
    Bytes bad = file;
    bad[i] ^= 0x5a;
    try {
      parse_patch(bad, "t.graft");
    } catch (const Error&) {
    }
  }
}

void expect_refused(Patch p, const char* fragment) {
  Bytes file = serialized(p);
  try {
    parse_patch(file, "t.graft");
    FAIL() << "accepted a patch that should be refused (" << fragment << ")";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(PatchFile, RelocationOutsideImage) {
  Patch p = sample();
  p.relocations[0].offset = p.layout.file_size() - 2;
  expect_refused(p, "outside");
}

TEST(PatchFile, RelocationToUnknownExternal) {
  Patch p = sample();
  p.relocations[0].external = 7;
  expect_refused(p, "external symbol 7");
}

TEST(PatchFile, UnsupportedRelocationType) {
  Patch p = sample();
  p.relocations[0].type = R_X86_64_TPOFF32;
  expect_refused(p, "unsupported type");
}

TEST(PatchFile, ReplacementOutsideCode) {
  Patch p = sample();
  p.functions[0].replacement_offset = kPageSize;
  expect_refused(p, "replacement");
}

TEST(PatchFile, OverlappingParts) {
  Patch p = sample();
  p.layout.data_offset = p.layout.rodata_offset;
  p.image.assign(p.layout.file_size(), 0);
  expect_refused(p, "overlap");
}

TEST(PatchFile, HugeSizesAreRefused) {
  Patch p = sample();
  p.layout.bss_size = uint64_t(1) << 40;
  expect_refused(p, "larger than");
}

TEST(PatchFile, NoFunctions) {
  Patch p = sample();
  p.functions.clear();
  expect_refused(p, "replaces no function");
}

}  // namespace
}  // namespace graft
