#include <nlohmann/json.hpp>

#include <cstring>
#include <limits>
#include <type_traits>

#include "arch/x86_64/entry_thunk.h"
#include "arch/x86_64/jump.h"
#include "arch/x86_64/relocation.h"
#include "common/error.h"
#include "common/file.h"
#include "patch/patch.h"

namespace graft {

using json = nlohmann::json;

namespace {

constexpr char kMagic[8] = {'G', 'R', 'A', 'F', 'T', 'P', 'F', '1'};
// Version 2 adds `callbacks' and `cumulative', version 3 a function's
// `thunk'; a patch is written with the lowest version that has what it uses,
// so that a graft too old for it refuses it rather than ignore a field.
constexpr uint32_t kFormatVersion = 3;
constexpr uint32_t kOldestFormatVersion = 1;
constexpr size_t kHeaderSize = 56;  // magic, version, sizes, SHA-256 of the rest
constexpr uint64_t kMaxManifest = 16u << 20;
constexpr uint64_t kMaxImage = 256u << 20;
constexpr size_t kMaxEntries = 1u << 20;
constexpr size_t kMaxText = 4096;
// Larger than any function graft should ever replace; apply reads this many
// bytes from the target.
constexpr uint64_t kMaxFunctionSize = 16u << 20;

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
  if (l.unwind_object) {
    j["layout"]["eh_frame"] = l.eh_frame;
    j["layout"]["unwind_object"] = l.unwind_object;
  }
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
    if (f.thunk)
      fns.back()["thunk"] = {{"offset", f.thunk->offset},
                             {"size", f.thunk->size},
                             {"preserved", f.thunk->preserved},
                             {"stack_argument_bytes", f.thunk->stack_argument_bytes}};
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

// Typed field access that names the field in its error. The JSON type must
// be exactly the one expected: nlohmann would otherwise turn -1 or 1e30 into
// an unsigned number, or a boolean into an integer.
template <typename T>
bool has_type(const json& v) {
  if constexpr (std::is_same_v<T, bool>) return v.is_boolean();
  else if constexpr (std::is_same_v<T, std::string>) return v.is_string();
  else if constexpr (std::is_unsigned_v<T>)
    return v.is_number_unsigned() && v.get<uint64_t>() <= std::numeric_limits<T>::max();
  else if constexpr (std::is_signed_v<T>)
    return v.is_number_integer() &&
           (!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max()));
  else static_assert(!sizeof(T), "unsupported field type");
}

template <typename T>
T field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) fail("{}: missing field `{}'", where, key);
  if (!has_type<T>(j.at(key))) fail("{}: field `{}' has the wrong type", where, key);
  return j.at(key).get<T>();
}

template <typename T>
T element(const json& a, size_t i, const std::string& where) {
  if (!has_type<T>(a.at(i))) fail("{}: element {} has the wrong type", where, i);
  return a.at(i).get<T>();
}

const json& object_field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_object())
    fail("{}: missing object `{}'", where, key);
  return j.at(key);
}

// Names and symbols end up in messages, logs and the target's record.
void check_text(const std::string& s, const std::string& where, bool may_be_empty) {
  if (s.empty() && !may_be_empty) fail("{}: empty", where);
  if (s.size() > kMaxText) fail("{}: longer than {} bytes", where, kMaxText);
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) fail("{}: contains a control character", where);
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
  for (const auto& f : p.functions)
    if (f.thunk) return 3;
  return p.callbacks.empty() && !p.cumulative ? 1 : 2;
}

Patch from_json(const json& j, const std::string& file, uint32_t version) {
  Patch p;
  p.name = field<std::string>(j, "name", file);
  check_text(p.name, file + ": patch name", false);
  const json& t = object_field(j, "target", file);
  p.target.path = field<std::string>(t, "path", file + ": target");
  p.target.build_id = field<std::string>(t, "build_id", file + ": target");
  p.target.position_independent = field<bool>(t, "position_independent", file + ": target");
  check_text(p.target.path, file + ": target path", true);
  from_hex(p.target.build_id, "target build-id");
  if (p.target.build_id.empty() || p.target.build_id.size() > 128)
    fail("{}: target build-id is empty or too long", file);

  const std::string lw = file + ": layout";
  const json& l = object_field(j, "layout", file);
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
  if (L.code_size == 0) fail("{}: no code", lw);
  if (L.rodata_offset % kPageSize || L.data_offset % kPageSize ||
      L.rodata_offset < page_round_up(L.code_size) ||
      L.data_offset < L.rodata_offset + page_round_up(L.rodata_size) ||
      L.data_offset > kMaxImage)
    fail("{}: parts overlap or are not page-aligned", lw);
  // Optional (patches built before graft registered unwind information).
  if (l.contains("unwind_object") || l.contains("eh_frame")) {
    L.eh_frame = field<uint64_t>(l, "eh_frame", lw);
    L.unwind_object = field<uint64_t>(l, "unwind_object", lw);
    uint64_t bss = L.data_offset + L.data_size;
    if (L.eh_frame < L.rodata_offset || L.rodata_size < 4 || L.eh_frame > L.rodata_offset + L.rodata_size - 4 ||
        L.unwind_object % 8 || L.unwind_object < bss || L.bss_size < kUnwindObjectSize ||
        L.unwind_object > bss + L.bss_size - kUnwindObjectSize)
      fail("{}: .eh_frame or its unwinder registration outside the image", lw);
  }

  for (const auto& f : array_field(j, "functions", file)) {
    FunctionReplacement r;
    std::string w = file + ": function";
    r.symbol = field<std::string>(f, "symbol", w);
    check_text(r.symbol, w + " symbol", false);
    w = fmt::format("{}: function `{}'", file, r.symbol);
    r.demangled = field<std::string>(f, "demangled", w);
    r.file = field<std::string>(f, "file", w);
    check_text(r.demangled, w + ": demangled name", true);
    check_text(r.file, w + ": file", true);
    r.address = field<uint64_t>(f, "address", w);
    r.size = field<uint64_t>(f, "size", w);
    r.sha256 = field<std::string>(f, "sha256", w);
    if (r.sha256.size() != 64) fail("{}: bad sha256", w);
    from_hex(r.sha256, "function sha256");
    for (const auto& c : array_field(f, "cold_parts", w)) {
      AddressRange part{field<uint64_t>(c, "address", w), field<uint64_t>(c, "size", w)};
      if (part.size > kMaxFunctionSize || part.start + part.size < part.start)
        fail("{}: bad cold part", w);
      r.cold_parts.push_back(part);
    }
    r.replacement = field<std::string>(f, "replacement", w);
    check_text(r.replacement, w + ": replacement", false);
    r.replacement_offset = field<uint64_t>(f, "replacement_offset", w);
    r.replacement_size = field<uint64_t>(f, "replacement_size", w);
    check_range(r.replacement_offset, std::max<uint64_t>(r.replacement_size, 1), L.code_size,
                w + ": replacement");
    if (f.is_object() && f.contains("thunk")) {
      if (version < 3) fail("{}: format version {} cannot have an entry thunk", w, version);
      const json& t = object_field(f, "thunk", w);
      const std::string tw = w + ": entry thunk";
      FunctionReplacement::Thunk x;
      x.offset = field<uint64_t>(t, "offset", tw);
      x.size = field<uint64_t>(t, "size", tw);
      x.preserved = field<uint32_t>(t, "preserved", tw);
      x.stack_argument_bytes = field<uint64_t>(t, "stack_argument_bytes", tw);
      check_range(x.offset, std::max<uint64_t>(x.size, 1), L.code_size, tw);
      if (x.size == 0) fail("{}: empty", tw);
      if (x.preserved == 0 || (x.preserved & ~arch::caller_saved_registers()))
        fail("{}: preserves {:#x}, not a set of call-clobbered registers", tw, x.preserved);
      if (x.stack_argument_bytes % 8 || x.stack_argument_bytes > arch::kMaxThunkStackArgumentBytes)
        fail("{}: bad stack argument size {}", tw, x.stack_argument_bytes);
      r.thunk = x;
    }
    if (r.size < arch::kRedirectSize || r.size > kMaxFunctionSize ||
        r.address + r.size < r.address)
      fail("{}: bad size {}", w, r.size);
    // Two entries for overlapping functions would write one jump into the other.
    for (const auto& o : p.functions)
      if (r.address < o.address + o.size && o.address < r.address + r.size)
        fail("{}: overlaps function `{}'", w, o.symbol);
    p.functions.push_back(std::move(r));
  }
  if (p.functions.empty()) fail("{}: the patch replaces no function", file);

  for (const auto& e : array_field(j, "externals", file)) {
    ExternalSymbol x;
    std::string w = file + ": external symbol";
    x.name = field<std::string>(e, "name", w);
    check_text(x.name, w, false);
    auto where = field<std::string>(e, "where", w);
    if (where == "target")
      x.where = ExternalSymbol::Where::Target;
    else if (where == "library")
      x.where = ExternalSymbol::Where::Library;
    else
      fail("{} `{}': unknown location", w, x.name);
    x.file = field<std::string>(e, "file", w);
    check_text(x.file, w + " file", true);
    x.value = field<uint64_t>(e, "value", w);
    p.externals.push_back(std::move(x));
  }

  for (const auto& r : array_field(j, "relocations", file)) {
    if (!r.is_array() || r.size() != 5) fail("{}: malformed relocation", file);
    Relocation x;
    const std::string rw = file + ": relocation";
    x.offset = element<uint64_t>(r, 0, rw);
    x.type = element<uint32_t>(r, 1, rw);
    x.addend = element<int64_t>(r, 2, rw);
    x.external = element<int64_t>(r, 3, rw);
    x.image_offset = element<uint64_t>(r, 4, rw);
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
      check_text(x.function, w + " function", false);
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

namespace {

constexpr char kSignatureMagic[8] = {'G', 'R', 'A', 'F', 'T', 'S', 'I', 'G'};
constexpr uint32_t kSignatureVersion = 1;
constexpr size_t kSignatureFixed = 8 + 4 + 4 + 32 + 64;
constexpr uint32_t kMaxSigner = 256;

// The size of header + manifest + image, checked against the file.
uint64_t unsigned_size(std::span<const uint8_t> in, const std::string& name) {
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
  uint64_t size = kHeaderSize + manifest_size + image_size;
  if (in.size() < size)
    fail("{}: truncated ({} bytes, header says {})", name, in.size(), size);
  return size;
}

}  // namespace

std::optional<PatchSignature> parse_signature_block(std::span<const uint8_t> t, const std::string& name) {
  if (t.empty()) return std::nullopt;
  if (t.size() < kSignatureFixed || std::memcmp(t.data(), kSignatureMagic, 8) != 0)
    fail("{}: truncated or has trailing bytes ({} bytes after the image, not a signature)", name,
         t.size());
  if (get<uint32_t>(t, 8) != kSignatureVersion)
    fail("{}: signature version {} is not supported", name, get<uint32_t>(t, 8));
  uint32_t signer_size = get<uint32_t>(t, 12);
  if (signer_size > kMaxSigner || t.size() != kSignatureFixed + signer_size)
    fail("{}: malformed signature trailer", name);
  PatchSignature s;
  s.public_key.assign(t.begin() + 16, t.begin() + 48);
  s.signature.assign(t.begin() + 48, t.begin() + 112);
  s.signer.assign(t.begin() + 112, t.end());
  check_text(s.signer, name + ": signer name", false);
  return s;
}

std::span<const uint8_t> unsigned_part(std::span<const uint8_t> in, const std::string& name) {
  return in.first(unsigned_size(in, name));
}

Bytes append_signature(std::span<const uint8_t> unsigned_file, const PatchSignature& s) {
  if (s.public_key.size() != 32 || s.signature.size() != 64 || s.signer.size() > kMaxSigner)
    fail("malformed signature");
  Bytes out(unsigned_file.begin(), unsigned_file.end());
  out.insert(out.end(), kSignatureMagic, kSignatureMagic + 8);
  put<uint32_t>(out, kSignatureVersion);
  put<uint32_t>(out, static_cast<uint32_t>(s.signer.size()));
  out.insert(out.end(), s.public_key.begin(), s.public_key.end());
  out.insert(out.end(), s.signature.begin(), s.signature.end());
  out.insert(out.end(), s.signer.begin(), s.signer.end());
  return out;
}

Patch parse_patch(std::span<const uint8_t> in, const std::string& name) {
  uint64_t size = unsigned_size(in, name);
  std::optional<PatchSignature> signature = parse_signature_block(in.subspan(size), name);
  uint32_t version = get<uint32_t>(in, 8);
  uint64_t manifest_size = get<uint32_t>(in, 12);
  uint64_t image_size = get<uint64_t>(in, 16);
  // Catches corruption, not tampering (that is what signatures are for).
  if (to_hex(in.subspan(24, 32)) != sha256_hex(in.subspan(kHeaderSize, size - kHeaderSize)))
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
  auto img = in.subspan(kHeaderSize + manifest_size, image_size);
  p.image.assign(img.begin(), img.end());
  p.sha256 = sha256_hex(in.first(size));
  p.signature = std::move(signature);
  return p;
}

Patch load_patch_file(const std::string& path) {
  Bytes b = read_file(path, kHeaderSize + kMaxManifest + kMaxImage + kSignatureFixed + kMaxSigner);
  return parse_patch(b, path);
}

}  // namespace graft
