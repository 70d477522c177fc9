// The patch-file parser is graft's first line of defence: every malformed
// input must be refused with a message, never crash or be half-accepted.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

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

// The unwinder registration: .eh_frame in rodata, libgcc's object in bss.
TEST(PatchFile, UnwindRegistrationInsideTheImage) {
  Patch p = sample();
  p.layout.bss_size = kUnwindObjectSize + 8;
  p.layout.eh_frame = p.layout.rodata_offset;
  p.layout.unwind_object = p.layout.data_offset + p.layout.data_size;
  Patch back = parse_patch(serialized(p), "t.graft");
  EXPECT_EQ(back.layout.eh_frame, p.layout.eh_frame);
  EXPECT_EQ(back.layout.unwind_object, p.layout.unwind_object);

  Patch in_data = p;
  in_data.layout.unwind_object = p.layout.data_offset;  // would overwrite data
  expect_refused(in_data, "unwinder registration outside the image");
  Patch past_bss = p;
  past_bss.layout.unwind_object += 16;
  expect_refused(past_bss, "unwinder registration outside the image");
  Patch in_code = p;
  in_code.layout.eh_frame = 0;
  expect_refused(in_code, "unwinder registration outside the image");
  Patch misaligned = p;
  misaligned.layout.unwind_object += 4;
  misaligned.layout.bss_size += 8;
  expect_refused(misaligned, "unwinder registration outside the image");
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

Patch with_callbacks() {
  Patch p = sample();
  p.callbacks.push_back({Callback::Kind::PrePatch, "check", 4});
  p.callbacks.push_back({Callback::Kind::PostUnpatch, "cleanup", 8});
  p.cumulative = true;
  return p;
}

uint32_t version_of(const Bytes& file) {
  uint32_t v;
  std::memcpy(&v, file.data() + 8, 4);
  return v;
}

// The file with its manifest edited and its header (version, size,
// checksum) rewritten to match, so only the manifest check can refuse it.
Bytes edited(const Bytes& file, const std::function<void(nlohmann::json&)>& edit, uint32_t version) {
  uint32_t msize;
  std::memcpy(&msize, file.data() + 12, 4);
  auto j = nlohmann::json::parse(file.begin() + 56, file.begin() + 56 + msize);
  edit(j);
  std::string m = j.dump();
  Bytes body(m.begin(), m.end());
  body.insert(body.end(), file.begin() + 56 + msize, file.end());
  Bytes out(file.begin(), file.begin() + 24);
  std::memcpy(out.data() + 8, &version, 4);
  uint32_t n = static_cast<uint32_t>(m.size());
  std::memcpy(out.data() + 12, &n, 4);
  Bytes digest = from_hex(sha256_hex(body), "digest");
  out.insert(out.end(), digest.begin(), digest.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

void expect_refused_file(const Bytes& file, const char* fragment) {
  try {
    parse_patch(file, "t.graft");
    FAIL() << "accepted a patch that should be refused (" << fragment << ")";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(PatchFile, CallbacksAndCumulativeRoundTrip) {
  Bytes file = serialized(with_callbacks());
  EXPECT_EQ(version_of(file), 2u);
  Patch back = parse_patch(file, "t.graft");
  ASSERT_EQ(back.callbacks.size(), 2u);
  ASSERT_NE(back.callback(Callback::Kind::PrePatch), nullptr);
  EXPECT_EQ(back.callback(Callback::Kind::PrePatch)->function, "check");
  EXPECT_EQ(back.callback(Callback::Kind::PostUnpatch)->offset, 8u);
  EXPECT_EQ(back.callback(Callback::Kind::PostPatch), nullptr);
  EXPECT_TRUE(back.cumulative);
}

TEST(PatchFile, PlainPatchStaysVersion1) {
  // Readable by a graft that predates callbacks.
  EXPECT_EQ(version_of(serialized(sample())), 1u);
  EXPECT_FALSE(parse_patch(serialized(sample()), "t.graft").cumulative);
}

TEST(PatchFile, CallbackChecks) {
  Patch p = with_callbacks();
  p.callbacks[0].offset = p.layout.code_size;
  expect_refused(p, "outside");
  p = with_callbacks();
  p.callbacks[1].kind = Callback::Kind::PrePatch;
  expect_refused(p, "given twice");
  Bytes file = serialized(with_callbacks());
  expect_refused_file(edited(file, [](auto& j) { j["callbacks"][0]["kind"] = "pre_load"; }, 2),
                      "unknown kind `pre_load'");
  expect_refused_file(edited(file, [](auto& j) { j["callbacks"][0].erase("offset"); }, 2),
                      "missing field `offset'");
  expect_refused_file(edited(file, [](auto& j) { j["callbacks"] = "x"; }, 2), "missing array");
  expect_refused_file(edited(file, [](auto& j) { j["cumulative"] = 1; }, 2), "wrong type");
  // A version-1 file cannot carry them: an old graft would ignore them.
  expect_refused_file(edited(file, [](auto&) {}, 1), "format version 1 cannot");
  EXPECT_NO_THROW(parse_patch(edited(file, [](auto&) {}, 2), "t.graft"));
}

// A manifest the builder never writes, with a header that matches it.
void expect_manifest_refused(const std::function<void(nlohmann::json&)>& edit, const char* fragment) {
  Bytes file = serialized(sample());
  expect_refused_file(edited(file, edit, version_of(file)), fragment);
}

TEST(PatchFile, ManifestEditsAreAcceptedWhenValid) {
  // The helper itself: an unchanged manifest still parses.
  Bytes file = serialized(sample());
  EXPECT_NO_THROW(parse_patch(edited(file, [](nlohmann::json&) {}, version_of(file)), "t.graft"));
}

// nlohmann would convert these silently: -1 to 2^64-1, 1.5 to 1, true to 1.
TEST(PatchFile, ManifestTypeConfusionIsRefused) {
  expect_manifest_refused([](auto& j) { j["functions"][0]["size"] = -1; }, "wrong type");
  expect_manifest_refused([](auto& j) { j["functions"][0]["address"] = 4096.5; }, "wrong type");
  expect_manifest_refused([](auto& j) { j["functions"][0]["address"] = "4096"; }, "wrong type");
  expect_manifest_refused([](auto& j) { j["layout"]["code_size"] = true; }, "wrong type");
  expect_manifest_refused([](auto& j) { j["target"] = "x"; }, "missing object `target'");
  expect_manifest_refused([](auto& j) { j["layout"] = nlohmann::json::array(); }, "layout");
  expect_manifest_refused([](auto& j) { j["functions"] = nlohmann::json::object(); }, "functions");
  expect_manifest_refused([](auto& j) { j["name"] = 7; }, "wrong type");
  // A relocation type past 32 bits would otherwise be truncated to PC32.
  expect_manifest_refused([](auto& j) { j["relocations"][0][1] = (uint64_t(1) << 32) + 2; },
                          "wrong type");
  expect_manifest_refused([](auto& j) { j["relocations"][0][3] = 1.0; }, "wrong type");
  expect_manifest_refused([](auto& j) { j["relocations"][0][4] = -4096; }, "wrong type");
}

TEST(PatchFile, FunctionTooShortForTheJump) {
  Patch p = sample();
  p.functions[0].size = 3;
  expect_refused(p, "bad size");
}

TEST(PatchFile, HugeFunctionIsRefused) {
  // apply reads the whole function from the target: never 2^40 bytes.
  Patch p = sample();
  p.functions[0].size = uint64_t(1) << 40;
  expect_refused(p, "bad size");
}

TEST(PatchFile, FunctionSizeWrapsAround) {
  Patch p = sample();
  p.functions[0].address = UINT64_MAX - 8;
  expect_refused(p, "bad size");
}

TEST(PatchFile, OverlappingFunctionsAreRefused) {
  Patch p = sample();
  FunctionReplacement g = p.functions[0];
  g.symbol = "other";
  g.address = p.functions[0].address + 16;
  p.functions.push_back(g);
  expect_refused(p, "overlaps function `handle'");
}

TEST(PatchFile, ReplacementEntryOutOfRange) {
  Patch p = sample();
  p.functions[0].replacement_offset = 8;
  p.functions[0].replacement_size = 9;  // ends past the 16 bytes of code
  expect_refused(p, "replacement");
}

TEST(PatchFile, RelocationTargetOutsideImage) {
  Patch p = sample();
  p.relocations[1].image_offset = 3 * kPageSize + 1;
  expect_refused(p, "outside");
}

TEST(PatchFile, ControlCharactersInNamesAreRefused) {
  Patch p = sample();
  p.name = "fix\x1b[2J";  // an escape sequence for the operator's terminal
  expect_refused(p, "control character");
  p = sample();
  p.functions[0].symbol = "a\nb";
  expect_refused(p, "control character");
}

TEST(PatchFile, NoCodeIsRefused) {
  Patch p = sample();
  p.layout.code_size = 0;
  expect_refused(p, "no code");
}

}  // namespace
}  // namespace graft

namespace graft {
namespace {

Patch with_thunk() {
  Patch p = sample();
  p.functions[0].thunk = FunctionReplacement::Thunk{8, 8, (1u << 6) | (1u << 18), 16};
  return p;
}

TEST(PatchFile, EntryThunkRoundTripIsVersion3) {
  Bytes file = serialized(with_thunk());
  EXPECT_EQ(version_of(file), 3u);
  Patch back = parse_patch(file, "t.graft");
  ASSERT_TRUE(back.functions[0].thunk);
  EXPECT_EQ(back.functions[0].thunk->offset, 8u);
  EXPECT_EQ(back.functions[0].thunk->preserved, (1u << 6) | (1u << 18));
  EXPECT_EQ(back.functions[0].thunk->stack_argument_bytes, 16u);
  EXPECT_EQ(back.functions[0].entry_offset(), 8u);
  EXPECT_EQ(parse_patch(serialized(sample()), "t.graft").functions[0].entry_offset(), 0u);
}

TEST(PatchFile, EntryThunkChecks) {
  Bytes file = serialized(with_thunk());
  auto thunk = [](const std::function<void(nlohmann::json&)>& edit) {
    return [edit](nlohmann::json& j) { edit(j["functions"][0]["thunk"]); };
  };
  // An older graft would jump past the thunk: version 2 cannot carry one.
  expect_refused_file(edited(file, [](auto&) {}, 2), "format version 2 cannot have an entry thunk");
  expect_refused_file(edited(file, thunk([](auto& t) { t["offset"] = 16; }), 3), "outside");
  expect_refused_file(edited(file, thunk([](auto& t) { t["size"] = 0; }), 3), "empty");
  expect_refused_file(edited(file, thunk([](auto& t) { t["preserved"] = 1u << 3; }), 3),
                      "not a set of call-clobbered registers");  // rbx
  expect_refused_file(edited(file, thunk([](auto& t) { t["preserved"] = 0; }), 3),
                      "not a set of call-clobbered registers");
  expect_refused_file(edited(file, thunk([](auto& t) { t["stack_argument_bytes"] = 12; }), 3),
                      "bad stack argument size");
  expect_refused_file(edited(file, thunk([](auto& t) { t["stack_argument_bytes"] = -8; }), 3), "wrong type");
  expect_refused_file(edited(file, thunk([](auto& t) { t.erase("preserved"); }), 3), "missing field");
  expect_refused_file(edited(file, [](auto& j) { j["functions"][0]["thunk"] = 1; }, 3), "missing object");
}

}  // namespace
}  // namespace graft
