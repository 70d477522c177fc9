#include "kernel/manifest.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "elf/elf_file.h"

namespace graft::kernel {

using nlohmann::json;

std::string manifest_to_json(const KernelPatchManifest& m) {
  json j;
  j["format"] = m.format;
  j["name"] = m.name;
  j["release"] = m.release;
  j["anchor_symbol"] = m.anchor_symbol;
  j["anchor_address"] = m.anchor_address;
  j["replace"] = m.replace;
  j["livepatch_symbols"] = m.livepatch_symbols;
  j["module_files"] = m.module_files;
  j["functions"] = json::array();
  for (const auto& f : m.functions) {
    json masked = json::array();
    for (const auto& r : f.masked) masked.push_back({{"offset", r.offset}, {"length", r.length}, {"reason", r.reason}});
    j["functions"].push_back({{"object", f.object},
                              {"name", f.name},
                              {"sympos", f.sympos},
                              {"address", f.address},
                              {"size", f.size},
                              {"next_symbol", f.next_symbol},
                              {"bytes", to_hex(f.bytes)},
                              {"masked", masked},
                              {"absolute32", f.absolute32},
                              {"percpu_pcrel32", f.percpu_pcrel32}});
  }
  return j.dump();
}

KernelPatchManifest manifest_from_json(const std::string& text, const std::string& origin) {
  KernelPatchManifest m;
  try {
    json j = json::parse(text);
    m.format = j.at("format").get<int>();
    if (m.format != 1) fail("{}: manifest format {} is not supported", origin, m.format);
    m.name = j.at("name").get<std::string>();
    m.release = j.at("release").get<std::string>();
    m.anchor_symbol = j.at("anchor_symbol").get<std::string>();
    m.anchor_address = j.at("anchor_address").get<uint64_t>();
    m.replace = j.at("replace").get<bool>();
    m.livepatch_symbols = j.at("livepatch_symbols").get<std::vector<std::string>>();
    // Modules built before module patching have none.
    if (j.contains("module_files")) m.module_files = j.at("module_files").get<std::map<std::string, std::string>>();
    for (const auto& f : j.at("functions")) {
      FunctionFingerprint fp;
      if (f.contains("object")) fp.object = f.at("object").get<std::string>();
      fp.name = f.at("name").get<std::string>();
      fp.sympos = f.at("sympos").get<unsigned>();
      fp.address = f.at("address").get<uint64_t>();
      fp.size = f.at("size").get<uint64_t>();
      fp.next_symbol = f.at("next_symbol").get<std::string>();
      fp.bytes = from_hex(f.at("bytes").get<std::string>(), "function bytes");
      if (fp.bytes.size() != fp.size || fp.size == 0 || fp.size > (1u << 20))
        fail("{}: function {}: {} bytes for a size of {}", origin, fp.name, fp.bytes.size(), fp.size);
      for (const auto& r : f.at("masked")) {
        MaskedRange mr{r.at("offset").get<uint32_t>(), r.at("length").get<uint32_t>(),
                       r.at("reason").get<std::string>()};
        if (uint64_t(mr.offset) + mr.length > fp.size)
          fail("{}: function {}: masked range {}+{} outside its {} bytes", origin, fp.name, mr.offset,
               mr.length, fp.size);
        fp.masked.push_back(mr);
      }
      fp.absolute32 = f.at("absolute32").get<std::vector<uint32_t>>();
      // Modules built before per-CPU displacements were recorded have none.
      if (f.contains("percpu_pcrel32")) fp.percpu_pcrel32 = f.at("percpu_pcrel32").get<std::vector<uint32_t>>();
      for (const auto* fields : {&fp.absolute32, &fp.percpu_pcrel32})
        for (uint32_t off : *fields)
          if (uint64_t(off) + 4 > fp.size)
            fail("{}: function {}: address field at +{} outside its {} bytes", origin, fp.name, off, fp.size);
      m.functions.push_back(std::move(fp));
    }
  } catch (const json::exception& e) {
    fail("{}: malformed graft manifest: {}", origin, e.what());
  }
  auto valid_name = [](const std::string& s) {
    if (s.empty() || s.size() > 55) return false;
    for (char c : s)
      if (!(isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
    return true;
  };
  if (!valid_name(m.name)) fail("{}: manifest: invalid patch name '{}'", origin, m.name);
  if (m.functions.empty()) fail("{}: manifest lists no function", origin);
  for (const auto& f : m.functions)
    if (!f.object.empty() && (!valid_name(f.object) || !m.module_files.count(f.object)))
      fail("{}: manifest: function {} of module '{}', which has no module file", origin, f.name, f.object);
  for (const auto& [module, file] : m.module_files)
    if (!valid_name(module) || file.empty() || file.front() == '/' || file.find("..") != std::string::npos)
      fail("{}: manifest: module '{}' with file '{}'", origin, module, file);
  return m;
}

KernelPatchManifest read_module_manifest(const std::string& module_path, const std::string& display) {
  const std::string& name = display.empty() ? module_path : display;
  ElfFile elf(module_path, name);
  const ElfSection* s = elf.section(kManifestSection);
  if (!s)
    fail("{}: not a graft livepatch module (no {} section); build it with graft build --kernel", name,
         kManifestSection);
  Bytes data = elf.section_data(s->index);
  return manifest_from_json(std::string(data.begin(), data.end()), name);
}

}  // namespace graft::kernel
