#include <nlohmann/json.hpp>

#include <cstring>

#include "arch/x86_64/relocation.h"
#include "common/error.h"
#include "common/file.h"
#include "patch/patch.h"

namespace graft {

using json = nlohmann::json;

namespace {

constexpr char kMagic[8] = {'G', 'R', 'A', 'F', 'T', 'P', 'F', '1'};
// Version 2 adds `callbacks' and `cumulative'; a patch without either is
// still written as version 1, readable by every graft.
constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kOldestFormatVersion = 1;
constexpr size_t kHeaderSize = 56;  // magic, version, sizes, SHA-256 of the rest
constexpr uint64_t kMaxManifest = 16u << 20;
constexpr uint64_t kMaxImage = 256u << 20;
constexpr size_t kMaxEntries = 1u << 20;

template <typename T>
void put(Bytes& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

template <typename T>
T get(std::span<const uint8_t> in, size_t at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof(T));
  return v;
}

json to_json(const Patch& p) {
  json j;
  j["name"] = p.name;
  j["target"] = {{"path", p.target.path},
                 {"build_id", p.target.build_id},
                 {"position_independent", p.target.position_independent}};
  const auto& l = p.layout;
  j["layout"] = {{"code_size", l.code_size},         {"rodata_offset", l.rodata_offset},
                 {"rodata_size", l.rodata_size},     {"data_offset", l.data_offset},
                 {"data_size", l.data_size},         {"bss_size", l.bss_size}};
  json fns = json::array();
  for (const auto& f : p.functions) {
    json cold = json::array();
    for (const auto& c : f.cold_parts) cold.push_back({{"address", c.start}, {"size", c.size}});
    fns.push_back({{"symbol", f.symbol},
                   {"demangled", f.demangled},
                   {"file", f.file},
                   {"address", f.address},
                   {"size", f.size},
                   {"sha256", f.sha256},
                   {"cold_parts", cold},
                   {"replacement", f.replacement},
                   {"replacement_offset", f.replacement_offset},
                   {"replacement_size", f.replacement_size}});
  }
  j["functions"] = fns;
  json ext = json::array();
  for (const auto& e : p.externals)
    ext.push_back({{"name", e.name},
                   {"where", e.where == ExternalSymbol::Where::Target ? "target" : "library"},
                   {"file", e.file},
                   {"value", e.value}});
  j["externals"] = ext;
  json rel = json::array();
  for (const auto& r : p.relocations)
    rel.push_back({r.offset, r.type, r.addend, r.external, r.image_offset});
  j["relocations"] = rel;
  if (!p.callbacks.empty()) {
    json cbs = json::array();
    for (const auto& c : p.callbacks)
      cbs.push_back({{"kind", callback_kind_name(c.kind)}, {"function", c.function}, {"offset", c.offset}});
    j["callbacks"] = cbs;
  }
  if (p.cumulative) j["cumulative"] = true;
  return j;
}

// Typed field access that names the field in its error.
template <typename T>
T field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) fail("{}: missing field `{}'", where, key);
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    fail("{}: field `{}' has the wrong type", where, key);
  }
}

const json& array_field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_array())
    fail("{}: missing array `{}'", where, key);
  if (j.at(key).size() > kMaxEntries) fail("{}: too many entries in `{}'", where, key);
  return j.at(key);
}

void check_range(uint64_t start, uint64_t size, uint64_t limit, const std::string& what) {
  if (start > limit || size > limit - start)
    fail("{} [{:#x}, +{:#x}) lies outside [0, {:#x})", what, start, size, limit);
}

uint32_t format_version(const Patch& p) {
  return p.callbacks.empty() && !p.cumulative ? 1 : 2;
}

Patch from_json(const json& j, const std::string& file, uint32_t version) {
  Patch p;
  p.name = field<std::string>(j, "name", file);
  const json& t = j.at("target");
  p.target.path = field<std::string>(t, "path", file + ": target");
  p.target.build_id = field<std::string>(t, "build_id", file + ": target");
  p.target.position_independent = field<bool>(t, "position_independent", file + ": target");
  from_hex(p.target.build_id, "target build-id");
  if (p.target.build_id.empty()) fail("{}: target build-id is empty", file);

  const std::string lw = file + ": layout";
  const json& l = j.contains("layout") ? j.at("layout") : json();
  auto& L = p.layout;
  L.code_size = field<uint64_t>(l, "code_size", lw);
  L.rodata_offset = field<uint64_t>(l, "rodata_offset", lw);
  L.rodata_size = field<uint64_t>(l, "rodata_size", lw);
  L.data_offset = field<uint64_t>(l, "data_offset", lw);
  L.data_size = field<uint64_t>(l, "data_size", lw);
  L.bss_size = field<uint64_t>(l, "bss_size", lw);
  if (L.code_size > kMaxImage || L.rodata_size > kMaxImage || L.data_size > kMaxImage ||
      L.bss_size > kMaxImage)
    fail("{}: image part larger than {} bytes", lw, kMaxImage);
  if (L.rodata_offset % kPageSize || L.data_offset % kPageSize ||
      L.rodata_offset < page_round_up(L.code_size) ||
      L.data_offset < L.rodata_offset + page_round_up(L.rodata_size) ||
      L.data_offset > kMaxImage)
    fail("{}: parts overlap or are not page-aligned", lw);

  for (const auto& f : array_field(j, "functions", file)) {
    FunctionReplacement r;
    std::string w = file + ": function";
    r.symbol = field<std::string>(f, "symbol", w);
    w = fmt::format("{}: function `{}'", file, r.symbol);
    r.demangled = field<std::string>(f, "demangled", w);
    r.file = field<std::string>(f, "file", w);
    r.address = field<uint64_t>(f, "address", w);
    r.size = field<uint64_t>(f, "size", w);
    r.sha256 = field<std::string>(f, "sha256", w);
    if (r.sha256.size() != 64) fail("{}: bad sha256", w);
    from_hex(r.sha256, "function sha256");
    for (const auto& c : array_field(f, "cold_parts", w))
      r.cold_parts.push_back({field<uint64_t>(c, "address", w), field<uint64_t>(c, "size", w)});
    r.replacement = field<std::string>(f, "replacement", w);
    r.replacement_offset = field<uint64_t>(f, "replacement_offset", w);
    r.replacement_size = field<uint64_t>(f, "replacement_size", w);
    check_range(r.replacement_offset, std::max<uint64_t>(r.replacement_size, 1), L.code_size,
                w + ": replacement");
    if (r.size == 0 || r.address + r.size < r.address) fail("{}: bad size", w);
    p.functions.push_back(std::move(r));
  }
  if (p.functions.empty()) fail("{}: the patch replaces no function", file);

  for (const auto& e : array_field(j, "externals", file)) {
    ExternalSymbol x;
    std::string w = file + ": external symbol";
    x.name = field<std::string>(e, "name", w);
    auto where = field<std::string>(e, "where", w);
    if (where == "target")
      x.where = ExternalSymbol::Where::Target;
    else if (where == "library")
      x.where = ExternalSymbol::Where::Library;
    else
      fail("{} `{}': unknown location `{}'", w, x.name, where);
    x.file = field<std::string>(e, "file", w);
    x.value = field<uint64_t>(e, "value", w);
    if (x.name.empty()) fail("{}: empty name", w);
    p.externals.push_back(std::move(x));
  }

  for (const auto& r : array_field(j, "relocations", file)) {
    if (!r.is_array() || r.size() != 5) fail("{}: malformed relocation", file);
    Relocation x;
    try {
      x.offset = r[0].get<uint64_t>();
      x.type = r[1].get<uint32_t>();
      x.addend = r[2].get<int64_t>();
      x.external = r[3].get<int64_t>();
      x.image_offset = r[4].get<uint64_t>();
    } catch (const json::exception&) {
      fail("{}: malformed relocation", file);
    }
    std::string w = fmt::format("{}: relocation at image offset {:#x}", file, x.offset);
    size_t width = arch::relocation_width(x.type);
    if (width == 0) fail("{}: unsupported type {}", w, x.type);
    check_range(x.offset, width, L.file_size(), w);
    if (x.external >= static_cast<int64_t>(p.externals.size()) || x.external < -1)
      fail("{}: refers to external symbol {} of {}", w, x.external, p.externals.size());
    if (x.external < 0) check_range(x.image_offset, 0, L.memory_size(), w + ": target");
    p.relocations.push_back(x);
  }

  if (version < 2 && (j.contains("callbacks") || j.contains("cumulative")))
    fail("{}: format version {} cannot have callbacks or be cumulative", file, version);
  if (j.contains("callbacks")) {
    for (const auto& c : array_field(j, "callbacks", file)) {
      Callback x;
      std::string w = file + ": callback";
      auto kind = field<std::string>(c, "kind", w);
      bool known = false;
      for (auto k : {Callback::Kind::PrePatch, Callback::Kind::PostPatch, Callback::Kind::PreUnpatch,
                     Callback::Kind::PostUnpatch})
        if (kind == callback_kind_name(k)) {
          x.kind = k;
          known = true;
        }
      if (!known) fail("{}: unknown kind `{}'", w, kind);
      w += " " + kind;
      if (p.callback(x.kind)) fail("{}: given twice", w);
      x.function = field<std::string>(c, "function", w);
      x.offset = field<uint64_t>(c, "offset", w);
      check_range(x.offset, 1, L.code_size, w);
      p.callbacks.push_back(std::move(x));
    }
  }
  if (j.contains("cumulative")) p.cumulative = field<bool>(j, "cumulative", file);
  return p;
}

}  // namespace

const char* callback_kind_name(Callback::Kind kind) {
  switch (kind) {
    case Callback::Kind::PrePatch: return "pre_patch";
    case Callback::Kind::PostPatch: return "post_patch";
    case Callback::Kind::PreUnpatch: return "pre_unpatch";
    case Callback::Kind::PostUnpatch: return "post_unpatch";
  }
  return "unknown";
}

uint64_t ImageLayout::memory_size() const {
  return data_offset + page_round_up(data_size + bss_size);
}

Bytes serialize_patch(const Patch& patch) {
  std::string manifest = to_json(patch).dump();
  Bytes body(manifest.begin(), manifest.end());
  body.insert(body.end(), patch.image.begin(), patch.image.end());
  Bytes out(kMagic, kMagic + 8);
  put<uint32_t>(out, format_version(patch));
  put<uint32_t>(out, static_cast<uint32_t>(manifest.size()));
  put<uint64_t>(out, patch.image.size());
  Bytes digest = from_hex(sha256_hex(body), "digest");
  out.insert(out.end(), digest.begin(), digest.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Patch parse_patch(std::span<const uint8_t> in, const std::string& name) {
  if (in.size() < kHeaderSize || std::memcmp(in.data(), kMagic, 8) != 0)
    fail("{}: not a graft patch file (bad magic)", name);
  auto version = get<uint32_t>(in, 8);
  if (version < kOldestFormatVersion || version > kFormatVersion)
    fail("{}: patch format version {} is not supported (this graft reads {} to {})", name, version,
         kOldestFormatVersion, kFormatVersion);
  uint64_t manifest_size = get<uint32_t>(in, 12);
  uint64_t image_size = get<uint64_t>(in, 16);
  if (manifest_size > kMaxManifest || image_size > kMaxImage)
    fail("{}: manifest or image too large", name);
  if (in.size() != kHeaderSize + manifest_size + image_size)
    fail("{}: truncated or has trailing bytes ({} bytes, header says {})", name, in.size(),
         kHeaderSize + manifest_size + image_size);
  // Catches corruption, not tampering (that is what signatures are for).
  if (to_hex(in.subspan(24, 32)) != sha256_hex(in.subspan(kHeaderSize)))
    fail("{}: checksum mismatch: the file is corrupt", name);
  json j = json::parse(in.begin() + kHeaderSize, in.begin() + kHeaderSize + manifest_size,
                       nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail("{}: manifest is not valid JSON", name);
  Patch p;
  try {
    p = from_json(j, name, version);
  } catch (const json::exception& e) {
    fail("{}: malformed manifest: {}", name, e.what());
  }
  if (p.layout.file_size() != image_size)
    fail("{}: image is {} bytes, layout says {}", name, image_size, p.layout.file_size());
  auto img = in.subspan(kHeaderSize + manifest_size);
  p.image.assign(img.begin(), img.end());
  p.sha256 = sha256_hex(in);
  return p;
}

Patch load_patch_file(const std::string& path) {
  Bytes b = read_file(path, kHeaderSize + kMaxManifest + kMaxImage);
  return parse_patch(b, path);
}

}  // namespace graft
