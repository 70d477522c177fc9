#include "loader/patch_record.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "arch/x86_64/jump.h"
#include "common/error.h"

namespace graft {

using json = nlohmann::json;

namespace {

constexpr char kMagic[8] = {'G', 'R', 'A', 'F', 'T', 'R', 'E', 'C'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kStateOffset = 12;
constexpr size_t kHeaderSize = 32;
constexpr uint64_t kMaxJson = 4u << 20;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t state;
  uint64_t seq;
  uint64_t json_size;
};
static_assert(sizeof(Header) == kHeaderSize);

json ranges_json(const std::vector<AddressRange>& v) {
  json a = json::array();
  for (const auto& r : v) a.push_back({r.start, r.size});
  return a;
}

json to_json(const PatchRecord& r) {
  json fns = json::array();
  for (const auto& f : r.functions)
    fns.push_back({{"symbol", f.symbol},
                   {"demangled", f.demangled},
                   {"file", f.file},
                   {"address", f.address},
                   {"size", f.size},
                   {"site", f.site},
                   {"replacement", f.replacement},
                   {"replacement_size", f.replacement_size},
                   {"original", to_hex(f.original)},
                   {"redirect", to_hex(f.redirect)},
                   {"cold_parts", ranges_json(f.cold_parts)}});
  json cbs = json::array();
  for (const auto& c : r.callbacks)
    cbs.push_back({{"kind", callback_kind_name(c.kind)}, {"function", c.function}, {"address", c.address}});
  return {{"id", r.id},
          {"name", r.name},
          {"callbacks", cbs},
          {"cumulative", r.cumulative},
          {"sha256", r.sha256},
          {"target_path", r.target_path},
          {"build_id", r.build_id},
          {"region_size", r.region_size},
          {"image_base", r.image_base},
          {"code_size", r.code_size},
          {"applied_at", r.applied_at},
          {"graft_pid", r.graft_pid},
          {"functions", fns}};
}

bool in_exec_mapping(const std::vector<Mapping>& maps, uint64_t start, uint64_t size) {
  for (const auto& m : maps)
    if (m.exec && start >= m.start && size <= m.end - start) return true;
  return false;
}

PatchRecord from_json(const json& j, const Mapping& region, const Header& h,
                      const std::vector<Mapping>& maps) {
  PatchRecord r;
  r.region_start = region.start;
  r.seq = h.seq;
  if (h.state < 1 || h.state > 3) fail("unknown state {}", h.state);
  r.state = static_cast<RecordState>(h.state);
  r.id = j.at("id").get<std::string>();
  r.name = j.at("name").get<std::string>();
  r.sha256 = j.at("sha256").get<std::string>();
  r.target_path = j.at("target_path").get<std::string>();
  r.build_id = j.at("build_id").get<std::string>();
  r.region_size = j.at("region_size").get<uint64_t>();
  r.image_base = j.at("image_base").get<uint64_t>();
  r.code_size = j.at("code_size").get<uint64_t>();
  r.applied_at = j.at("applied_at").get<int64_t>();
  r.graft_pid = j.at("graft_pid").get<pid_t>();
  // The region must be exactly what the maps show, and the code inside it.
  uint64_t mapped_end = region.start;
  for (const auto& m : maps)
    if (m.path == region.path && m.start == mapped_end) mapped_end = m.end;
  if (r.region_size != mapped_end - region.start) fail("region size does not match its mapping");
  if (r.image_base < region.start || r.code_size > r.region_size ||
      r.image_base - region.start > r.region_size - r.code_size)
    fail("code lies outside the region");
  for (const auto& f : j.at("functions")) {
    FunctionRecord x;
    x.symbol = f.at("symbol").get<std::string>();
    x.demangled = f.at("demangled").get<std::string>();
    x.file = f.at("file").get<std::string>();
    x.address = f.at("address").get<uint64_t>();
    x.size = f.at("size").get<uint64_t>();
    x.site = f.at("site").get<uint64_t>();
    x.replacement = f.at("replacement").get<uint64_t>();
    x.replacement_size = f.at("replacement_size").get<uint64_t>();
    x.original = from_hex(f.at("original").get<std::string>(), "original bytes");
    x.redirect = from_hex(f.at("redirect").get<std::string>(), "redirect bytes");
    for (const auto& c : f.at("cold_parts"))
      x.cold_parts.push_back({c.at(0).get<uint64_t>(), c.at(1).get<uint64_t>()});
    if (x.original.size() != arch::kRedirectSize || x.redirect.size() != arch::kRedirectSize)
      fail("function {}: saved bytes have the wrong size", x.symbol);
    if (x.site < x.address || x.site - x.address + arch::kRedirectSize > x.size ||
        !in_exec_mapping(maps, x.address, x.size))
      fail("function {}: not inside the process's code", x.symbol);
    if (!r.code().contains(x.replacement)) fail("function {}: replacement outside the patch", x.symbol);
    r.functions.push_back(std::move(x));
  }
  // Absent from records of a graft that predates callbacks.
  if (j.contains("callbacks")) {
    for (const auto& c : j.at("callbacks")) {
      CallbackRecord x;
      std::string kind = c.at("kind").get<std::string>();
      bool known = false;
      for (auto k : {Callback::Kind::PrePatch, Callback::Kind::PostPatch, Callback::Kind::PreUnpatch,
                     Callback::Kind::PostUnpatch})
        if (kind == callback_kind_name(k)) {
          x.kind = k;
          known = true;
        }
      if (!known) fail("unknown callback kind {}", kind);
      x.function = c.at("function").get<std::string>();
      x.address = c.at("address").get<uint64_t>();
      if (!r.code().contains(x.address)) fail("callback {}: outside the patch's code", x.function);
      r.callbacks.push_back(std::move(x));
    }
  }
  if (j.contains("cumulative")) r.cumulative = j.at("cumulative").get<bool>();
  return r;
}

json to_json(const RuntimeRecord& r) {
  json ex = json::object();
  for (const auto& [name, addr] : r.exports) ex[name] = addr;
  return {{"kind", "runtime"},     {"sha256", r.sha256},           {"region_size", r.region_size},
          {"image_base", r.image_base}, {"code_size", r.code_size}, {"exports", ex},
          {"installed_at", r.installed_at}, {"graft_pid", r.graft_pid}};
}

RuntimeRecord runtime_from_json(const json& j, const Mapping& region, const std::vector<Mapping>& maps) {
  RuntimeRecord r;
  r.region_start = region.start;
  r.sha256 = j.at("sha256").get<std::string>();
  r.region_size = j.at("region_size").get<uint64_t>();
  r.image_base = j.at("image_base").get<uint64_t>();
  r.code_size = j.at("code_size").get<uint64_t>();
  r.installed_at = j.at("installed_at").get<int64_t>();
  r.graft_pid = j.at("graft_pid").get<pid_t>();
  uint64_t mapped_end = region.start;
  for (const auto& m : maps)
    if (m.path == region.path && m.start == mapped_end) mapped_end = m.end;
  if (r.region_size != mapped_end - region.start) fail("region size does not match its mapping");
  if (r.image_base < region.start || r.code_size > r.region_size ||
      r.image_base - region.start > r.region_size - r.code_size)
    fail("code lies outside the region");
  for (const auto& [name, addr] : j.at("exports").items()) {
    uint64_t a = addr.get<uint64_t>();
    if (a < r.image_base || a - r.image_base >= r.code_size)
      fail("runtime function {} lies outside its code", name);
    r.exports[name] = a;
  }
  return r;
}

}  // namespace

uint64_t runtime_record_pages(const RuntimeRecord& r) {
  return page_round_up(kHeaderSize + to_json(r).dump().size());
}

Bytes encode_runtime_record(const RuntimeRecord& r) {
  std::string text = to_json(r).dump();
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kVersion;
  h.state = static_cast<uint32_t>(RecordState::Active);
  h.seq = 0;
  h.json_size = text.size();
  Bytes out(reinterpret_cast<const uint8_t*>(&h), reinterpret_cast<const uint8_t*>(&h) + kHeaderSize);
  out.insert(out.end(), text.begin(), text.end());
  return out;
}

std::string state_name(RecordState s) {
  switch (s) {
    case RecordState::Loading: return "loading";
    case RecordState::Active: return "applied";
    case RecordState::Reverting: return "reverting";
  }
  return "unknown";
}

uint64_t record_pages(const PatchRecord& r) {
  return page_round_up(kHeaderSize + to_json(r).dump().size());
}

Bytes encode_record(const PatchRecord& r) {
  std::string text = to_json(r).dump();
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kVersion;
  h.state = static_cast<uint32_t>(r.state);
  h.seq = r.seq;
  h.json_size = text.size();
  Bytes out(reinterpret_cast<const uint8_t*>(&h), reinterpret_cast<const uint8_t*>(&h) + kHeaderSize);
  out.insert(out.end(), text.begin(), text.end());
  return out;
}

void write_record_state(const ProcessMemory& memory, const PatchRecord& r, RecordState state) {
  uint32_t v = static_cast<uint32_t>(state);
  memory.write({r.region_start + kStateOffset},
               {reinterpret_cast<const uint8_t*>(&v), sizeof v});
}

RecordScan read_records(pid_t pid, const std::vector<Mapping>& maps, const ProcessMemory& memory) {
  RecordScan scan;
  const std::string prefix = std::string("/memfd:") + kRegionNamePrefix;
  for (const auto& m : maps) {
    if (m.path.rfind(prefix, 0) != 0 || m.offset != 0) continue;
    try {
      Header h;
      if (!memory.try_read({m.start}, &h, sizeof h)) fail("unreadable");
      if (std::memcmp(h.magic, kMagic, 8) != 0) fail("bad magic");
      if (h.version != kVersion) fail("record format version {}", h.version);
      if (h.json_size > kMaxJson || h.json_size > m.end - m.start - kHeaderSize)
        fail("record size out of range");
      Bytes text = memory.read({m.start + kHeaderSize}, h.json_size);
      json j = json::parse(text.begin(), text.end(), nullptr, false);
      if (j.is_discarded() || !j.is_object()) fail("record is not valid JSON");
      if (j.contains("kind") && j.at("kind") == "runtime") {
        if (scan.runtime) fail("a second graft runtime region");
        scan.runtime = runtime_from_json(j, m, maps);
      } else {
        scan.records.push_back(from_json(j, m, h, maps));
      }
    } catch (const std::exception& e) {
      scan.problems.push_back(
          fmt::format("process {}: graft region at {:#x} has an invalid record: {}", pid, m.start, e.what()));
      InvalidRegion bad;
      bad.problem = scan.problems.back();
      uint64_t end = m.end;
      for (const auto& other : maps)
        if (other.inode == m.inode && other.device == m.device && other.path == m.path &&
            other.start == end)
          end = other.end;
      bad.range = {m.start, end - m.start};
      Bytes first(std::min<uint64_t>(m.end - m.start, 4096));
      bad.blank = memory.try_read({m.start}, first.data(), first.size()) &&
                  std::all_of(first.begin(), first.end(), [](uint8_t b) { return b == 0; });
      scan.invalid.push_back(std::move(bad));
    }
  }
  std::sort(scan.records.begin(), scan.records.end(),
            [](const PatchRecord& a, const PatchRecord& b) { return a.seq < b.seq; });
  return scan;
}

const FunctionRecord* newest_redirect(const std::vector<PatchRecord>& records, uint64_t address,
                                      const PatchRecord* excluded, const PatchRecord** owner) {
  const FunctionRecord* top = nullptr;
  for (const auto& r : records) {  // sorted by seq: the last match is the newest
    if (&r == excluded || r.state != RecordState::Active) continue;
    for (const auto& f : r.functions)
      if (f.address == address) {
        top = &f;
        if (owner) *owner = &r;
      }
  }
  return top;
}

}  // namespace graft
