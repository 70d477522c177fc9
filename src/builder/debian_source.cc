#include "builder/debian_source.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include "builder/build_command.h"
#include "common/command_output.h"
#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"
#include "elf/debug_package.h"
#include "elf/elf_file.h"
#include "elf/elf_headers.h"
#include "elf/separate_debug.h"

namespace graft {

namespace fs = std::filesystem;

namespace {

std::string cache_root() {
  const char* env = std::getenv("GRAFT_DEBIAN_CACHE");
  return env && *env ? env : "/var/cache/graft/debian";
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Package names and versions become folder names and apt arguments.
void check_name(const std::string& what, const std::string& value) {
  bool ok = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("+-.~:").find(c) != std::string_view::npos;
  });
  if (!ok) fail("--debian-source: `{}' is not a Debian {}", value, what);
}

std::string folder_name(const std::string& package, const std::string& version) {
  std::string v = version;
  std::replace(v.begin(), v.end(), ':', '%');  // an epoch
  return package + "_" + v;
}

UniqueFd lock_folder(const std::string& folder, const std::function<void(const std::string&)>& progress) {
  fs::create_directories(folder);
  std::string path = folder + "/lock";
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) fail("{}: {}", path, errno_text(errno));
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    progress("waiting for another graft building in " + folder);
    if (flock(fd.get(), LOCK_EX) != 0) fail("{}: cannot lock: {}", path, errno_text(errno));
  }
  return fd;
}

// The source package and version the installed package owning `target`
// was built from, or nullopt when no installed package owns it.
std::optional<std::pair<std::string, std::string>> installed_source_of(const std::string& target) {
  std::string binary = owning_package(target);
  if (binary.empty()) return std::nullopt;
  auto out = command_output("/", {"dpkg-query", "-W", "-f", "${source:Package}\t${source:Version}", binary});
  if (!out) return std::nullopt;
  std::string line = trim(*out);
  size_t tab = line.find('\t');
  if (tab == std::string::npos || tab == 0 || tab + 1 == line.size()) return std::nullopt;
  return std::make_pair(line.substr(0, tab), line.substr(tab + 1));
}

// A fingerprint of an unpacked tree the operator gives: its files' names,
// sizes and times, so that a tree changed since (another `quilt pop`) gets
// an original build of its own.
std::string tree_fingerprint(const std::string& dir) {
  std::vector<std::string> entries;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    if (!it->is_regular_file() || it->is_symlink()) continue;
    auto time = it->last_write_time().time_since_epoch().count();
    entries.push_back(fmt::format("{}\t{}\t{}", fs::path(it->path()).lexically_relative(dir).string(),
                                  it->file_size(), time));
  }
  std::sort(entries.begin(), entries.end());
  std::string all = fs::canonical(dir).string() + "\n";
  for (const auto& e : entries) all += e + "\n";
  return sha256_hex({reinterpret_cast<const uint8_t*>(all.data()), all.size()}).substr(0, 12);
}

std::string changelog_field(const std::string& dir, const char* field) {
  auto out = command_output(dir, {"dpkg-parsechangelog", "-l", "debian/changelog", "-S", field});
  if (!out || trim(*out).empty())
    fail("{}: cannot read the {} from debian/changelog (dpkg-parsechangelog; is dpkg-dev "
         "installed?)",
         dir, field);
  return trim(*out);
}

// apt-get source into `folder`/source, once.
std::string fetch_source(const std::string& package, const std::string& version, const std::string& folder,
                         const std::function<void(const std::string&)>& progress) {
  std::string dir = folder + "/source";
  std::string done = dir + "/.graft-fetched";
  if (fs::exists(done)) return trim(read_text_file(done));
  fs::remove_all(dir);
  fs::create_directories(dir);
  progress(fmt::format("fetching the source of {} {} (apt-get source)", package, version));
  std::string log = folder + "/fetch.log";
  int rc = run_in_directory(dir, {"apt-get", "source", "--only-source", package + "=" + version}, {}, log);
  if (rc != 0) {
    std::string text = read_text_file(log);
    if (text.find("deb-src") != std::string::npos)
      fail("cannot fetch the source of {} {}: apt has no source archive (deb-src) configured; "
           "enable it, e.g.: sed 's/^Types: deb$/Types: deb-src/' "
           "/etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/debian-src.sources "
           "&& apt-get update",
           package, version);
    if (text.find("Unable to find a source package") != std::string::npos ||
        text.find("Can not find version") != std::string::npos)
      fail("cannot fetch the source of {} {}: the configured archives do not have that version "
           "(`apt-cache showsrc {}' lists those they have); unpack the right source yourself and "
           "pass its folder to --debian-source",
           package, version, package);
    fail("cannot fetch the source of {} {} (apt-get source exited with {}); last lines of {}:{}",
         package, version, rc, log, tail_of_file(log, 10));
  }
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_directory() && fs::exists(entry.path() / "debian/rules")) {
      write_text_file(done, entry.path().string() + "\n");
      return entry.path().string();
    }
  fail("apt-get source {}={} unpacked no source tree into {}", package, version, dir);
}

void check_build_dependencies(const DebianSource& s) {
  std::string log = s.cache + "/builddeps.log";
  if (run_in_directory(s.tree, {"dpkg-checkbuilddeps"}, {}, log) == 0) return;
  std::string text = read_text_file(log);
  std::string unmet;
  if (size_t at = text.find("Unmet build dependencies:"); at != std::string::npos)
    unmet = trim(text.substr(at + 25));
  std::string how = fs::path(s.tree).parent_path().string() == s.cache + "/source"
                        ? fmt::format("apt-get build-dep {}={}", s.package, s.version)
                        : fmt::format("apt-get build-dep {}", s.tree);
  fail("cannot build {} {} the way Debian does: missing build dependencies{}{}; install them "
       "with: {}",
       s.package, s.version, unmet.empty() ? "" : ": ", unmet, how);
}

// A quilt tree whose series lists patches that are not applied would not
// build what Debian builds from it: dpkg-source --before-build applies them.
void check_quilt_state(const std::string& tree) {
  fs::path format = fs::path(tree) / "debian/source/format";
  if (!fs::exists(format) || read_text_file(format).find("quilt") == std::string::npos) return;
  fs::path series = fs::path(tree) / "debian/patches/series";
  if (!fs::exists(series)) return;
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    for (std::string line : split_lines(text)) {
      line = line.substr(0, line.find_first_of(" \t#"));
      if (!line.empty()) out.push_back(line);
    }
    return out;
  };
  auto listed = lines(read_text_file(series));
  fs::path applied_file = fs::path(tree) / ".pc/applied-patches";
  auto applied = fs::exists(applied_file) ? lines(read_text_file(applied_file)) : std::vector<std::string>{};
  std::vector<std::string> missing;
  for (const auto& p : listed)
    if (std::find(applied.begin(), applied.end(), p) == applied.end()) missing.push_back(p);
  if (!missing.empty())
    fail("{}: {} patch(es) of debian/patches/series are not applied (the first: {}); Debian's "
         "build would apply them, so this tree is not what built the target: apply them (quilt "
         "push -a) or take them out of the series",
         tree, missing.size(), missing.front());
}

}  // namespace

DebianSource prepare_debian_source(const std::string& spec, const std::string& target,
                                   const std::function<void(const std::string&)>& progress) {
  DebianSource s;
  if (fs::is_directory(spec)) {
    if (!fs::is_regular_file(fs::path(spec) / "debian/rules") || !fs::is_regular_file(fs::path(spec) / "debian/changelog"))
      fail("{}: not an unpacked Debian source package (no debian/rules and debian/changelog)", spec);
    s.tree = fs::canonical(spec).string();
    s.package = changelog_field(s.tree, "Source");
    s.version = changelog_field(s.tree, "Version");
    check_name("source package", s.package);
    check_name("version", s.version);
    s.cache = cache_root() + "/" + folder_name(s.package, s.version) + "-" + tree_fingerprint(s.tree);
    s.lock = lock_folder(s.cache, progress);
    progress(fmt::format("source: {} {} from {}", s.package, s.version, s.tree));
  } else {
    size_t eq = spec.find('=');
    s.package = spec.substr(0, eq);
    check_name("source package", s.package);
    auto installed = installed_source_of(target);
    if (eq != std::string::npos) {
      s.version = spec.substr(eq + 1);
    } else if (!installed) {
      fail("{} belongs to no installed package: name the version (--debian-source {}=VERSION) or "
           "give the unpacked source's folder",
           target, s.package);
    } else if (installed->first != s.package) {
      fail("{} comes from the source package {} {}, not {}", target, installed->first,
           installed->second, s.package);
    } else {
      s.version = installed->second;
    }
    check_name("version", s.version);
    if (installed && installed->first == s.package && installed->second != s.version)
      progress(fmt::format("note: {} is installed from {} {}, not {}", target, installed->first,
                           installed->second, s.version));
    s.cache = cache_root() + "/" + folder_name(s.package, s.version);
    s.lock = lock_folder(s.cache, progress);
    s.tree = fetch_source(s.package, s.version, s.cache, progress);
    progress(fmt::format("source: {} {} (apt-get source, in {})", s.package, s.version, s.tree));
  }
  check_quilt_state(s.tree);
  check_build_dependencies(s);
  return s;
}

std::string debian_build_command() {
  return "dpkg-buildpackage --no-sign --rules-target=clean,build-arch";
}

namespace {

// The names in the Source stanza's Build-Depends and Build-Depends-Arch
// (alternatives included; versions, architectures and profiles dropped).
std::set<std::string> build_dependency_names(const std::string& control) {
  std::set<std::string> names;
  std::string field;  // the current field's value, continuation lines joined
  bool wanted = false;
  auto flush = [&] {
    if (!wanted) return;
    size_t start = 0;
    while (start < field.size()) {
      size_t end = std::min(field.find_first_of(",|", start), field.size());
      std::string item = field.substr(start, end - start);
      start = end + 1;
      size_t b = item.find_first_not_of(" \t");
      if (b == std::string::npos) continue;
      std::string name = item.substr(b, item.find_first_of(" \t(:[<", b) - b);
      if (!name.empty() && name[0] != '$') names.insert(name);
    }
  };
  bool in_stanza = false;
  for (const auto& line : split_lines(control)) {
    if (!line.empty() && line[0] == '#') continue;
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (in_stanza) break;  // the end of the Source stanza
      continue;
    }
    in_stanza = true;
    if (line[0] == ' ' || line[0] == '\t') {
      field += " " + line;
      continue;
    }
    flush();
    size_t colon = line.find(':');
    std::string key = line.substr(0, colon);
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
    wanted = colon != std::string::npos && (key == "build-depends" || key == "build-depends-arch");
    field = colon == std::string::npos ? "" : line.substr(colon + 1);
  }
  flush();
  return names;
}

}  // namespace

std::string build_dependency_versions(const std::string& tree) {
  fs::path control = fs::path(tree) / "debian/control";
  if (!fs::exists(control)) return "";
  auto names = build_dependency_names(read_text_file(control));
  for (const char* p : {"libc6-dev", "binutils", "dpkg-dev", "make", "gcc-12", "g++-12", "debhelper"}) names.insert(p);
  auto installed = command_output("/", {"dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n"});
  if (!installed) return "";
  std::string out;
  for (const auto& line : split_lines(*installed)) {
    size_t a = line.find('\t'), b = line.find('\t', a + 1);
    if (a == std::string::npos || b == std::string::npos || line.rfind("ii", 0) != 0) continue;
    std::string package = line.substr(a + 1, b - a - 1);
    if (names.count(package)) out += package + "=" + line.substr(b + 1) + "\n";
  }
  return out;
}

std::map<std::string, std::string> debian_build_environment() {
  unsigned jobs = std::max(1u, std::thread::hardware_concurrency());
  return {{"DEB_BUILD_OPTIONS", fmt::format("nocheck parallel={}", jobs)}};
}

std::vector<BuiltBinary> record_built_binaries(const std::string& tree, const std::string& cache) {
  std::vector<BuiltBinary> out;
  std::string index;
  for (auto it = fs::recursive_directory_iterator(tree); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_directory() && (it->path().filename() == ".git" || it->path().filename() == ".pc")) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file() || it->is_symlink()) continue;
    std::string path = it->path().string();
    auto headers = read_elf_headers(path);
    if (!headers || !headers->build_id || (headers->type != ET_EXEC && headers->type != ET_DYN)) continue;
    std::string rel = fs::path(path).lexically_relative(tree).string();
    // Keep the same binary once (libtool's .libs copy and its install copy).
    std::string id = *headers->build_id;
    if (std::any_of(out.begin(), out.end(), [&](const BuiltBinary& b) { return b.build_id == id; })) continue;
    out.push_back({rel, id});
    index += id + "\t" + rel + "\n";
    bool symtab = false;
    try {
      ElfFile elf(path);
      for (const auto& sec : elf.sections()) symtab |= sec.name == ".symtab";
    } catch (const Error&) {
      continue;  // not an ELF file libelf can read: nothing to keep
    }
    if (!symtab || id.size() < 3) continue;
    fs::path debug = fs::path(graft_debug_root()) / ".build-id" / id.substr(0, 2) / (id.substr(2) + ".debug");
    if (fs::exists(debug)) continue;
    fs::create_directories(debug.parent_path());
    fs::copy_file(path, debug.string() + ".tmp", fs::copy_options::overwrite_existing);
    fs::rename(debug.string() + ".tmp", debug);
  }
  write_text_file(cache + "/binaries", index);
  return out;
}

std::vector<BuiltBinary> recorded_binaries(const std::string& cache) {
  std::vector<BuiltBinary> out;
  if (!fs::exists(cache + "/binaries")) return out;
  for (const auto& line : split_lines(read_text_file(cache + "/binaries"))) {
    size_t tab = line.find('\t');
    if (tab != std::string::npos) out.push_back({line.substr(tab + 1), line.substr(0, tab)});
  }
  return out;
}

}  // namespace graft
