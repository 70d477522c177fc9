// graft's record inside a target is read from memory the target controls:
// parse_record() must accept the records graft writes and refuse every
// record that would make graft write anywhere but the entries it patched.
// The seeds are real records (fuzz/corpus/patch_record: maps, NUL, record
// bytes, made by fuzz/make_corpus.sh).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"
#include "loader/patch_record.h"
#include "process/maps.h"

namespace graft {
namespace {

struct Seed {
  std::vector<Mapping> maps;
  Bytes record;
  Mapping region;
};

// The seed's record and the region it belongs to.
Seed load(const std::string& name) {
  Bytes b = read_file(std::string(GRAFT_FUZZ_CORPUS_DIR) + "/patch_record/" + name);
  auto nul = std::find(b.begin(), b.end(), 0);
  Seed s;
  s.maps = parse_maps(std::string(b.begin(), nul), 1);
  s.record.assign(nul + 1, b.end());
  for (const auto& m : s.maps) {
    if (m.path.rfind("/memfd:graft:", 0) != 0 || m.offset != 0) continue;
    try {
      parse_record(s.record, m, s.maps);
      s.region = m;
      return s;
    } catch (const Error&) {
    }
  }
  ADD_FAILURE() << name << ": no region accepts the record";
  return s;
}

Bytes with_json(const Bytes& record, const std::function<void(nlohmann::json&)>& edit) {
  uint64_t size;
  std::memcpy(&size, record.data() + 24, 8);
  auto j = nlohmann::json::parse(record.begin() + 32, record.begin() + 32 + size);
  edit(j);
  std::string text = j.dump();
  Bytes out(record.begin(), record.begin() + 32);
  uint64_t n = text.size();
  std::memcpy(out.data() + 24, &n, 8);
  out.insert(out.end(), text.begin(), text.end());
  return out;
}

void expect_refused(const Seed& s, const std::function<void(nlohmann::json&)>& edit,
                    const char* fragment) {
  Bytes bad = with_json(s.record, edit);
  try {
    parse_record(bad, s.region, s.maps);
    FAIL() << "accepted a hostile record (" << fragment << ")";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(PatchRecord, EverySeedIsAccepted) {
  for (const auto& e : std::filesystem::directory_iterator(std::string(GRAFT_FUZZ_CORPUS_DIR) + "/patch_record")) {
    Seed s = load(e.path().filename());
    PatchRecord r = parse_record(s.record, s.region, s.maps);
    EXPECT_FALSE(r.functions.empty());
    // And re-encoding it gives a record that parses the same.
    EXPECT_EQ(parse_record(encode_record(r), s.region, s.maps).functions.size(), r.functions.size());
  }
}

TEST(PatchRecord, SiteOutsideTheFunction) {
  Seed s = load("one-patch-0.rec");
  expect_refused(s, [](auto& j) { j["functions"][0]["site"] = j["functions"][0]["address"].template get<uint64_t>() + 100; },
                 "not inside the process's code");
}

// site - address + 5 wrapped around: a site 3 bytes before the function
// passed the old check.
TEST(PatchRecord, SiteBeforeTheFunctionByWrapAround) {
  Seed s = load("one-patch-0.rec");
  expect_refused(s, [](auto& j) {
    auto& f = j["functions"][0];
    uint64_t a = f["address"].template get<uint64_t>();
    f["address"] = a + 3;
    f["size"] = f["size"].template get<uint64_t>() + 16;
    f["site"] = a;  // = address - 3
  }, "not inside the process's code");
}

// A function starting past the end of every executable mapping passed the
// old check (m.end - start wrapped around).
TEST(PatchRecord, FunctionPastTheEndOfItsMapping) {
  Seed s = load("one-patch-0.rec");
  uint64_t past = 0;
  for (const auto& m : s.maps)
    if (m.exec) past = std::max(past, m.end);
  expect_refused(s, [&](auto& j) {
    auto& f = j["functions"][0];
    f["address"] = past + 0x1000;
    f["site"] = past + 0x1000;
  }, "not inside the process's code");
}

TEST(PatchRecord, FunctionInsideAGraftRegion) {
  Seed s = load("one-patch-0.rec");
  expect_refused(s, [](auto& j) {
    auto& f = j["functions"][0];
    f["address"] = j["image_base"];
    f["site"] = j["image_base"];
  }, "not inside the process's code");
}

TEST(PatchRecord, ReplacementOutsideThePatch) {
  Seed s = load("one-patch-0.rec");
  expect_refused(s, [](auto& j) { j["functions"][0]["replacement"] = j["functions"][0]["address"]; },
                 "replacement outside the patch");
}

TEST(PatchRecord, RedirectThatIsNotTheJumpToTheReplacement) {
  Seed s = load("one-patch-0.rec");
  expect_refused(s, [](auto& j) { j["functions"][0]["redirect"] = "cccccccccc"; },
                 "not a jump to its replacement");
}

// A function a cumulative patch puts back has the original bytes as its
// redirect: accepted only in a cumulative record, with no code of its own
// (stop model) or its relocated original inside the gates (per thread).
TEST(PatchRecord, RestoredFunctionOfACumulativePatch) {
  Seed s = load("one-patch-0.rec");
  Bytes ok = with_json(s.record, [](auto& j) {
    j["cumulative"] = true;
    auto& f = j["functions"][0];
    f["restores"] = true;
    f["redirect"] = f["original"];
    f["replacement"] = 0;
    f["replacement_size"] = 0;
  });
  PatchRecord r = parse_record(ok, s.region, s.maps);
  ASSERT_EQ(r.functions.size(), 1u);
  EXPECT_TRUE(r.functions[0].restores);
  EXPECT_EQ(r.functions[0].redirect, r.functions[0].original);
}

TEST(PatchRecord, RestoredFunctionOutsideACumulativeTransition) {
  Seed s = load("one-patch-0.rec");
  expect_refused(s, [](auto& j) {
    auto& f = j["functions"][0];
    f["restores"] = true;
    f["redirect"] = f["original"];
  }, "restored function's record is inconsistent");
  expect_refused(s, [](auto& j) {
    j["cumulative"] = true;
    auto& f = j["functions"][0];
    f["restores"] = true;
    f["redirect"] = f["original"];
  }, "restored function's record is inconsistent");
  expect_refused(s, [](auto& j) { j["functions"][0]["restores"] = 1; }, "not a boolean");
}

TEST(PatchRecord, RegionSizeLargerThanTheMapping) {
  Seed s = load("one-patch-0.rec");
  expect_refused(s, [](auto& j) { j["region_size"] = j["region_size"].template get<uint64_t>() + 4096; },
                 "region size");
}

TEST(PatchRecord, RecordOfAnotherRegion) {
  Seed s = load("one-patch-0.rec");
  expect_refused(s, [](auto& j) {
    j["id"] = "000000000000";
    j["sha256"] = std::string(64, '0');
  }, "in region");
}

// libgcc keeps pointers to the patch's .eh_frame and writes its `struct
// object': both must be in the region, which graft unmaps after it
// deregisters them.
TEST(PatchRecord, UnwindRegistrationOutsideTheRegion) {
  Seed s = load("one-patch-0.rec");
  const uint64_t start = s.region.start;
  auto with = [&](uint64_t eh_frame, uint64_t object) {
    return [=](auto& j) {
      j["unwind"] = {{"eh_frame", eh_frame}, {"object", object}, {"register", 1}, {"deregister", 2}, {"find_fde", 3}};
    };
  };
  expect_refused(s, with(start - 4096, start + 64), "unwind registration outside the region");
  expect_refused(s, [&](auto& j) {
    uint64_t end = start + j["region_size"].template get<uint64_t>();
    with(start + 64, end - kUnwindObjectSize + 8)(j);
  }, "unwind registration outside the region");
  expect_refused(s, with(start + 64, start + 68), "unwind registration outside the region");
  expect_refused(s, [](auto& j) { j["unwind"] = 1; }, "not an object");
  // The return stubs' registration is checked the same way.
  expect_refused(s, [&](auto& j) {
    j["stub_unwind"] = {{"eh_frame", start - 4096}, {"object", start + 64}, {"register", 1}, {"deregister", 2},
                        {"find_fde", 3}};
  }, "unwind registration outside the region (`stub_unwind')");
  expect_refused(s, [](auto& j) { j["stub_unwind"] = "x"; }, "not an object");
}

TEST(PatchRecord, TypeConfusion) {
  Seed s = load("one-patch-0.rec");
  expect_refused(s, [](auto& j) { j["functions"][0]["size"] = -1; }, "not an unsigned integer");
  expect_refused(s, [](auto& j) { j["functions"][0]["site"] = "0"; }, "not an unsigned integer");
  expect_refused(s, [](auto& j) { j["functions"] = nlohmann::json::object(); }, "not an array");
  expect_refused(s, [](auto& j) { j["functions"][0]["cold_parts"] = {{1}}; }, "cold part");
  expect_refused(s, [](auto& j) { j["functions"] = nlohmann::json::array(); }, "no function");
}

TEST(PatchRecord, TruncatedAndOversized) {
  Seed s = load("one-patch-0.rec");
  for (size_t n = 0; n < s.record.size(); n += 13)
    EXPECT_THROW(parse_record(std::span<const uint8_t>(s.record.data(), n), s.region, s.maps), Error)
        << n;
  Bytes big = s.record;
  uint64_t huge = uint64_t(1) << 40;
  std::memcpy(big.data() + 24, &huge, 8);
  EXPECT_THROW(parse_record(big, s.region, s.maps), Error);
}

}  // namespace
}  // namespace graft
