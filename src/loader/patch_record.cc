#include "loader/patch_record.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <signal.h>
#include <unistd.h>

#include "runtime/transition_abi.h"

#include "arch/x86_64/jump.h"
#include "arch/x86_64/return_stub.h"
#include "arch/x86_64/trap_handler.h"
#include "common/error.h"
#include "process/proc_status.h"

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

json unwind_json(const UnwindRecord& u) {
  return {{"eh_frame", u.eh_frame},
          {"object", u.object},
          {"register", u.register_fn},
          {"deregister", u.deregister_fn},
          {"find_fde", u.find_fde_fn}};
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
                   {"cold_parts", ranges_json(f.cold_parts)},
                   {"gate", f.gate},
                   {"old_path", f.old_path},
                   {"displaced", f.displaced},
                   {"gate_redirect", to_hex(f.gate_redirect)},
                   {"restores", f.restores}});
  json cbs = json::array();
  for (const auto& c : r.callbacks)
    cbs.push_back({{"kind", callback_kind_name(c.kind)}, {"function", c.function}, {"address", c.address}});
  return {{"id", r.id},
          {"name", r.name},
          {"callbacks", cbs},
          {"cumulative", r.cumulative},
          {"settled", r.settled},
          {"sha256", r.sha256},
          {"target_path", r.target_path},
          {"build_id", r.build_id},
          {"region_size", r.region_size},
          {"image_base", r.image_base},
          {"code_size", r.code_size},
          {"applied_at", r.applied_at},
          {"graft_pid", r.graft_pid},
          {"model", model_name(r.model)},
          {"transition",
           {{"area", r.transition.area},
            {"area_size", r.transition.area_size},
            {"gates", r.transition.gates},
            {"gates_size", r.transition.gates_size},
            {"capacity", r.transition.capacity},
            {"report_capacity", r.transition.report_capacity},
            {"trap_handler", r.transition.trap_handler},
            {"trap_sites", r.transition.trap_sites},
            {"switch_flag", r.transition.switch_flag},
            {"return_stubs", r.transition.return_stubs},
            {"return_stub_count", r.transition.return_stub_count}}},
          {"unwind", unwind_json(r.unwind)},
          {"stub_unwind", unwind_json(r.stub_unwind)},
          {"functions", fns}};
}

// Typed access to a record field: a hostile record may put any JSON value
// anywhere, so each field must have exactly the expected type.
uint64_t u64(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_number_unsigned()) fail("field `{}' is not an unsigned integer", key);
  return v.get<uint64_t>();
}
std::string str(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_string()) fail("field `{}' is not a string", key);
  return v.get<std::string>();
}
const json& array(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_array()) fail("field `{}' is not an array", key);
  return v;
}

bool is_hex(const std::string& s, size_t size) {
  return s.size() == size && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// [start, start + size) lies inside one mapping accepted by `ok`.
template <typename Pred>
bool inside_mapping(const std::vector<Mapping>& maps, uint64_t start, uint64_t size, Pred ok) {
  for (const auto& m : maps)
    if (ok(m) && start >= m.start && start < m.end && size <= m.end - start) return true;
  return false;
}

int64_t i64(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_number_integer()) fail("field `{}' is not an integer", key);
  return v.get<int64_t>();
}
pid_t pid_field(const json& j, const char* key) {
  uint64_t v = u64(j, key);
  if (v > INT32_MAX) fail("field `{}' is out of range", key);
  return static_cast<pid_t>(v);
}

// What every graft region's record says of the region, checked against the
// maps: graft maps its regions private (a shared one is someone else's, and
// its pages could change under graft from another process); the region must
// be exactly what the maps show, the code inside it, at or after
// `code_from', in executable pages of the region itself.
void check_region_image(const Mapping& region, const std::vector<Mapping>& maps, uint64_t region_size,
                        uint64_t image_base, uint64_t code_size, uint64_t code_from) {
  if (region.shared) fail("region is a shared mapping");
  uint64_t mapped_end = region.start;
  for (const auto& m : maps)
    if (m.path == region.path && m.inode == region.inode && m.device == region.device &&
        m.start == mapped_end)
      mapped_end = m.end;
  if (region_size != mapped_end - region.start) fail("region size does not match its mapping");
  if (image_base < region.start || code_size > region_size ||
      image_base - region.start > region_size - code_size || code_size == 0 ||
      image_base - region.start < code_from)
    fail("code lies outside the region");
  if (!inside_mapping(maps, image_base, code_size, [&](const Mapping& m) {
        return m.exec && m.path == region.path && m.inode == region.inode;
      }))
    fail("code is not in an executable mapping of the region");
}

bool is_graft_region(const Mapping& m) {
  return m.path.rfind(std::string("/memfd:") + kRegionNamePrefix, 0) == 0;
}

PatchRecord from_json(const json& j, const Mapping& region, const Header& h,
                      const std::vector<Mapping>& maps) {
  PatchRecord r;
  r.region_start = region.start;
  r.seq = h.seq;
  if (h.state < 1 || h.state > 5) fail("unknown state {}", h.state);
  r.state = static_cast<RecordState>(h.state);
  if (!j.is_object()) fail("record is not a JSON object");
  r.id = str(j, "id");
  r.name = str(j, "name");
  r.sha256 = str(j, "sha256");
  r.target_path = str(j, "target_path");
  r.build_id = str(j, "build_id");
  r.region_size = u64(j, "region_size");
  r.image_base = u64(j, "image_base");
  r.code_size = u64(j, "code_size");
  r.applied_at = i64(j, "applied_at");
  r.graft_pid = pid_field(j, "graft_pid");
  if (!is_hex(r.id, 12) || !is_hex(r.sha256, 64) || r.sha256.compare(0, 12, r.id) != 0)
    fail("malformed patch id or sha256");
  // The memfd's name is "graft:<id>": the record must describe its own region.
  std::string own = std::string("/memfd:") + kRegionNamePrefix + r.id;
  if (region.path != own && region.path != own + " (deleted)")
    fail("record of patch {} in region {}", r.id, region.path);
  if (r.image_base % kPageSize != 0) fail("code lies outside the region");
  check_region_image(region, maps, r.region_size, r.image_base, r.code_size, kHeaderSize + h.json_size);
  auto in_region_code = [&](const Mapping& m) {
    return m.exec && m.path == region.path && m.inode == region.inode;
  };

  if (j.contains("model")) {
    std::string name = str(j, "model");
    auto model = parse_model(name);
    if (!model) fail("unknown model `{}'", name);
    r.model = *model;
  }
  auto inside = [&](uint64_t start, uint64_t size) {
    return start >= region.start && size <= r.region_size && start - region.start <= r.region_size - size;
  };
  if (j.contains("transition")) {
    const json& t = j.at("transition");
    if (!t.is_object()) fail("field `transition' is not an object");
    r.transition.area = u64(t, "area");
    r.transition.area_size = u64(t, "area_size");
    r.transition.gates = u64(t, "gates");
    r.transition.gates_size = u64(t, "gates_size");
    uint64_t capacity = u64(t, "capacity"), report_capacity = u64(t, "report_capacity");
    if (capacity > 65536 || report_capacity > 65536) fail("transition sizes out of range");
    r.transition.capacity = static_cast<uint32_t>(capacity);
    r.transition.report_capacity = static_cast<uint32_t>(report_capacity);
    if (t.contains("trap_handler")) {
      r.transition.trap_handler = u64(t, "trap_handler");
      r.transition.trap_sites = u64(t, "trap_sites");
    }
    if (t.contains("switch_flag")) r.transition.switch_flag = u64(t, "switch_flag");
    if (t.contains("return_stubs")) {
      r.transition.return_stubs = u64(t, "return_stubs");
      r.transition.return_stub_count = u64(t, "return_stub_count");
    }
  }
  // libgcc's functions are checked where they are called: in a file's
  // executable mapping outside the region.
  auto unwind = [&](const char* key) {
    UnwindRecord out;
    if (!j.contains(key)) return out;
    const json& u = j.at(key);
    if (!u.is_object()) fail("field `{}' is not an object", key);
    out = {u64(u, "eh_frame"), u64(u, "object"), u64(u, "register"), u64(u, "deregister"), u64(u, "find_fde")};
    if (out.eh_frame && (!inside(out.eh_frame, 4) || !inside(out.object, kUnwindObjectSize) || out.object % 8))
      fail("unwind registration outside the region (`{}')", key);
    return out;
  };
  r.unwind = unwind("unwind");
  r.stub_unwind = unwind("stub_unwind");
  if (r.switch_gates()) {
    // The stop model's switch gates: no transition area, a flag inside them.
    const auto& t = r.transition;
    if (r.per_thread() || r.model != Model::stop || !inside(t.gates, t.gates_size) ||
        !inside_mapping(maps, t.gates, t.gates_size, in_region_code) ||
        !AddressRange{t.gates, t.gates_size}.contains(t.switch_flag))
      fail("switch gates lie outside the region");
  } else if (r.has_gates() && !r.per_thread()) {
    fail("gates without a transition area or a switch flag");
  }
  if (r.per_thread()) {
    const auto& t = r.transition;
    uint64_t table_bytes = uint64_t(t.capacity) * sizeof(graft_universe_entry);
    uint64_t report_bytes = GRAFT_TRANSITION_REPORT_OFFSET + uint64_t(t.report_capacity) * sizeof(graft_report_entry);
    if (t.capacity == 0 || (t.capacity & (t.capacity - 1)) || !inside(t.area, t.area_size) ||
        page_round_up(report_bytes) + table_bytes > t.area_size || !inside(t.gates, t.gates_size) ||
        !inside_mapping(maps, t.gates, t.gates_size, in_region_code))
      fail("transition area or gates lie outside the region");
    if (t.trap_handler != 0 &&
        (t.trap_handler % 16 != 0 || t.trap_sites > 65536 ||
         !inside(t.trap_handler, arch::trap_handler_size(t.trap_sites)) ||
         !AddressRange{t.gates, t.gates_size}.contains(t.trap_handler) ||
         t.trap_handler + arch::trap_handler_size(t.trap_sites) > t.gates + t.gates_size))
      fail("trap handler lies outside the gates");
    if (t.return_stub_count != 0 &&
        (t.return_stubs % 16 != 0 || t.return_stub_count > 65536 || t.return_stub_count > t.trap_sites ||
         !inside(t.return_stubs, t.return_stub_count * arch::kReturnStubSize) ||
         !AddressRange{t.gates, t.gates_size}.contains(t.return_stubs) ||
         t.return_stubs + t.return_stub_count * arch::kReturnStubSize > t.gates + t.gates_size))
      fail("exit stubs lie outside the gates");
  } else if (r.model != Model::stop) {
    fail("model {} without a transition area", r.model);
  }

  if (j.contains("cumulative")) {
    if (!j.at("cumulative").is_boolean()) fail("field `cumulative' is not a boolean");
    r.cumulative = j.at("cumulative").get<bool>();
  }
  if (j.contains("settled")) {
    if (!j.at("settled").is_boolean()) fail("field `settled' is not a boolean");
    r.settled = j.at("settled").get<bool>();
    if (!r.settled && !r.cumulative) fail("field `settled' false in a patch that is not cumulative");
  }

  const json& fns = array(j, "functions");
  if (fns.empty()) fail("record has no function");
  for (const auto& f : fns) {
    if (!f.is_object()) fail("function entry is not an object");
    FunctionRecord x;
    x.symbol = str(f, "symbol");
    x.demangled = str(f, "demangled");
    x.file = str(f, "file");
    x.address = u64(f, "address");
    x.size = u64(f, "size");
    x.site = u64(f, "site");
    x.replacement = u64(f, "replacement");
    x.replacement_size = u64(f, "replacement_size");
    x.original = from_hex(str(f, "original"), "original bytes");
    x.redirect = from_hex(str(f, "redirect"), "redirect bytes");
    for (const auto& c : array(f, "cold_parts")) {
      if (!c.is_array() || c.size() != 2 || !c[0].is_number_unsigned() ||
          !c[1].is_number_unsigned())
        fail("function {}: malformed cold part", x.symbol);
      AddressRange range{c[0].get<uint64_t>(), c[1].get<uint64_t>()};
      if (range.start + range.size < range.start) fail("function {}: cold part wraps", x.symbol);
      x.cold_parts.push_back(range);
    }
    if (x.original.size() != arch::kRedirectSize || x.redirect.size() != arch::kRedirectSize)
      fail("function {}: saved bytes have the wrong size", x.symbol);
    // graft writes at `site` only: it must be at the entry (or just past its
    // landing pad), inside the function, inside a file's code, never in a
    // graft region.
    auto file_code = [](const Mapping& m) {
      return m.exec && !m.path.empty() && m.path[0] == '/' && m.path.rfind("/memfd:", 0) != 0;
    };
    if (x.site < x.address || x.site - x.address > arch::kMaxSiteOffset ||
        x.size < arch::kRedirectSize || x.site - x.address > x.size - arch::kRedirectSize ||
        !inside_mapping(maps, x.address, x.size, file_code))
      fail("function {}: not inside the process's code", x.symbol);
    if (f.contains("restores")) {
      if (!f.at("restores").is_boolean()) fail("field `restores' is not a boolean");
      x.restores = f.at("restores").get<bool>();
    }
    if (x.restores) {
      // Put back to the original code by a cumulative patch: what graft
      // writes at `site' is the original bytes; per thread, the relocated
      // original runs from the gates, and the stop model has no other code.
      AddressRange gates{r.transition.gates, r.transition.gates_size};
      bool code_ok = r.per_thread() ? gates.contains(x.replacement) &&
                                          x.replacement_size <= gates.start + gates.size - x.replacement
                                    : !r.has_gates() && x.replacement == 0 && x.replacement_size == 0;
      if (!r.cumulative || x.redirect != x.original || !code_ok)
        fail("function {}: a restored function's record is inconsistent", x.symbol);
    } else {
      if (!r.code().contains(x.replacement) ||
          x.replacement_size > r.image_base + r.code_size - x.replacement)
        fail("function {}: replacement outside the patch", x.symbol);
      // The jump this patch wrote can only be the jump to its replacement.
      if (x.redirect != arch::redirect_bytes(x.site, x.replacement))
        fail("function {}: the saved redirection is not a jump to its replacement", x.symbol);
    }
    for (const auto& other : r.functions)
      if (other.site == x.site) fail("function {}: listed twice", x.symbol);
    x.gate = f.contains("gate") ? u64(f, "gate") : 0;
    x.old_path = f.contains("old_path") ? u64(f, "old_path") : 0;
    x.displaced = f.contains("displaced") ? u64(f, "displaced") : 0;
    x.gate_redirect = from_hex(f.contains("gate_redirect") ? str(f, "gate_redirect") : std::string(),
                               "gate redirect bytes");
    if (r.has_gates()) {
      AddressRange gates{r.transition.gates, r.transition.gates_size};
      if (!gates.contains(x.gate) || !gates.contains(x.old_path) ||
          x.displaced < arch::kRedirectSize || x.displaced > x.size - (x.site - x.address))
        fail("function {}: gate outside the region's gates", x.symbol);
      // Likewise, the only other jump it writes there leads to its gate.
      if (x.gate_redirect != arch::redirect_bytes(x.site, x.gate))
        fail("function {}: the saved jump to its gate does not lead there", x.symbol);
    }
    r.functions.push_back(std::move(x));
  }
  // Absent from records of a graft that predates callbacks.
  if (j.contains("callbacks")) {
    for (const auto& c : array(j, "callbacks")) {
      if (!c.is_object()) fail("callback entry is not an object");
      CallbackRecord x;
      std::string kind = str(c, "kind");
      bool known = false;
      for (auto k : {Callback::Kind::PrePatch, Callback::Kind::PostPatch, Callback::Kind::PreUnpatch,
                     Callback::Kind::PostUnpatch})
        if (kind == callback_kind_name(k)) {
          x.kind = k;
          known = true;
        }
      if (!known) fail("unknown callback kind {}", kind);
      x.function = str(c, "function");
      x.address = u64(c, "address");
      // graft calls it in the process: only code of this patch.
      if (!r.code().contains(x.address)) fail("callback {}: outside the patch's code", x.function);
      if (r.callback(x.kind)) fail("callback {}: kind given twice", x.function);
      r.callbacks.push_back(std::move(x));
    }
  }
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
  std::string own = std::string("/memfd:") + kRegionNamePrefix + kRuntimeRegionName;
  if (region.path != own && region.path != own + " (deleted)")
    fail("runtime record in region {}", region.path);
  r.sha256 = str(j, "sha256");
  r.region_size = u64(j, "region_size");
  r.image_base = u64(j, "image_base");
  r.code_size = u64(j, "code_size");
  r.installed_at = i64(j, "installed_at");
  r.graft_pid = pid_field(j, "graft_pid");
  check_region_image(region, maps, r.region_size, r.image_base, r.code_size, 0);
  const json& exports = j.at("exports");
  if (!exports.is_object()) fail("field `exports' is not an object");
  for (const auto& [name, addr] : exports.items()) {
    // graft calls these in the process: only the runtime's own code.
    if (!addr.is_number_unsigned()) fail("runtime function {}: not an address", name);
    uint64_t a = addr.get<uint64_t>();
    if (a < r.image_base || a - r.image_base >= r.code_size)
      fail("runtime function {} lies outside its code", name);
    r.exports[name] = a;
  }
  return r;
}

// The header and JSON of a record, checked.
json record_json(std::span<const uint8_t> bytes, Header& h) {
  if (bytes.size() < kHeaderSize) fail("record truncated");
  std::memcpy(&h, bytes.data(), kHeaderSize);
  if (std::memcmp(h.magic, kMagic, 8) != 0) fail("bad magic");
  if (h.version != kVersion) fail("record format version {}", h.version);
  if (h.json_size > kMaxJson || h.json_size > bytes.size() - kHeaderSize)
    fail("record size out of range");
  auto text = bytes.subspan(kHeaderSize, h.json_size);
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail("record is not valid JSON");
  return j;
}

bool is_runtime_region(const Mapping& m) {
  std::string own = std::string("/memfd:") + kRegionNamePrefix + kRuntimeRegionName;
  return m.path == own || m.path == own + " (deleted)";
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
    case RecordState::Applying: return "applying (per-thread transition)";
    case RecordState::Unapplying: return "reverting (per-thread transition)";
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

RecordState read_record_state(const ProcessMemory& memory, const PatchRecord& r) {
  uint32_t v = 0;
  if (!memory.try_read({r.region_start + kStateOffset}, &v, sizeof v)) fail("record unreadable");
  if (v < 1 || v > 5) fail("unknown state {}", v);
  return static_cast<RecordState>(v);
}

TransitionStatus read_transition_status(const ProcessMemory& memory, const PatchRecord& r) {
  TransitionStatus st;
  try {
    if (!r.per_thread()) fail("no transition area");
    graft_transition_header h;
    if (!memory.try_read({r.transition.area}, &h, sizeof h)) fail("unreadable");
    if (std::memcmp(h.magic, GRAFT_TRANSITION_MAGIC, 8) != 0 || h.version != GRAFT_TRANSITION_VERSION)
      fail("bad magic or version");
    if (h.capacity != r.transition.capacity || h.report_capacity != r.transition.report_capacity ||
        h.report_count > h.report_capacity || h.threads_moved > h.threads_total)
      fail("sizes disagree with the record");
    st.driver_pid = h.driver_pid;
    // The pid comes from the target's memory: believed only if that process
    // really traces the target, as the graft driving a transition does (from
    // one of its threads, process/tracing_thread.h).
    pid_t tracer = tracer_pid(memory.pid(), memory.pid());
    st.driver_alive = h.driver_pid > 0 && kill(h.driver_pid, 0) == 0 && tracer > 0 &&
                      (tracer == h.driver_pid ||
                       access(fmt::format("/proc/{}/task/{}", h.driver_pid, tracer).c_str(), F_OK) == 0);
    st.revert_requested = h.revert_request != 0;
    st.threads_total = h.threads_total;
    st.threads_moved = h.threads_moved;
    st.report_seq = h.report_seq;
    std::vector<graft_report_entry> e(h.report_count);
    if (!e.empty() && !memory.try_read({r.transition.area + GRAFT_TRANSITION_REPORT_OFFSET}, e.data(),
                                       e.size() * sizeof e[0]))
      fail("report unreadable");
    for (auto& x : e) {
      x.holding[sizeof x.holding - 1] = 0;
      st.pending.push_back({x.tid, std::string(x.holding)});
    }
    st.valid = true;
  } catch (const Error& err) {
    st.problem = fmt::format("transition area of {}: {}", r.label(), err.what());
  }
  return st;
}

PatchRecord parse_record(std::span<const uint8_t> bytes, const Mapping& region,
                         const std::vector<Mapping>& maps) {
  Header h;
  json j = record_json(bytes, h);
  if (j.contains("kind")) fail("not a patch record");
  try {
    return from_json(j, region, h, maps);
  } catch (const json::exception& e) {
    fail("malformed record: {}", e.what());
  }
}

RuntimeRecord parse_runtime_record(std::span<const uint8_t> bytes, const Mapping& region,
                                   const std::vector<Mapping>& maps) {
  Header h;
  json j = record_json(bytes, h);
  if (!j.contains("kind") || j.at("kind") != "runtime") fail("not a runtime record");
  try {
    return runtime_from_json(j, region, maps);
  } catch (const json::exception& e) {
    fail("malformed runtime record: {}", e.what());
  }
}

RecordScan read_records(pid_t pid, const std::vector<Mapping>& maps, const ProcessMemory& memory) {
  RecordScan scan;
  for (const auto& m : maps) {
    if (!is_graft_region(m) || m.offset != 0) continue;
    try {
      Header h;
      if (!memory.try_read({m.start}, &h, sizeof h)) fail("unreadable");
      if (h.json_size > kMaxJson || h.json_size > m.end - m.start - kHeaderSize)
        fail("record size out of range");
      Bytes bytes = memory.read({m.start}, kHeaderSize + h.json_size);
      // The region's name says which record it holds: "graft:rt" the
      // runtime, "graft:<id>" a patch.
      if (is_runtime_region(m)) {
        if (scan.runtime) fail("a second graft runtime region");
        scan.runtime = parse_runtime_record(bytes, m, maps);
      } else {
        scan.records.push_back(parse_record(bytes, m, maps));
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
  std::stable_sort(scan.records.begin(), scan.records.end(),
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
