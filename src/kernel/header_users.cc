#include "kernel/header_users.h"

#include <algorithm>
#include <deque>
#include <filesystem>
#include <map>
#include <set>

#include "common/error.h"
#include "common/file.h"
#include "kernel/kernel_tree.h"

namespace graft::kernel {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& head) { return s.rfind(head, 0) == 0; }
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Directories whose files never reach an x86 kernel object.
bool skipped(const std::string& rel) {
  static const std::set<std::string> top = {"Documentation", "tools", "scripts", "samples", "debian", "usr",
                                            "LICENSES", ".git", ".pc"};
  size_t slash = rel.find('/');
  std::string first = rel.substr(0, slash);
  if (top.count(first)) return true;
  if (first == "arch" && slash != std::string::npos) {
    std::string arch = rel.substr(slash + 1, rel.find('/', slash + 1) - slash - 1);
    return arch != "x86";
  }
  return starts_with(rel, "include/config") || starts_with(rel, "include/generated");
}

struct Include {
  bool quoted;
  std::string name;
};

std::vector<Include> includes_of(const std::string& text) {
  std::vector<Include> out;
  size_t i = 0;
  while ((i = text.find("include", i)) != std::string::npos) {
    // "#" then spaces then "include" at the start of a line.
    size_t h = i;
    while (h > 0 && (text[h - 1] == ' ' || text[h - 1] == '\t')) --h;
    bool directive = h > 0 && text[h - 1] == '#';
    if (directive) {
      size_t b = h - 1;
      while (b > 0 && (text[b - 1] == ' ' || text[b - 1] == '\t')) --b;
      directive = b == 0 || text[b - 1] == '\n';
    }
    i += 7;
    if (!directive) continue;
    size_t j = i;
    while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
    if (j >= text.size() || (text[j] != '<' && text[j] != '"')) continue;
    char close = text[j] == '<' ? '>' : '"';
    size_t e = text.find_first_of(std::string(1, close) + "\n", j + 1);
    if (e == std::string::npos || text[e] != close) continue;
    out.push_back({close == '"', text.substr(j + 1, e - j - 1)});
  }
  return out;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

HeaderIncluders c_files_including(const std::string& tree, const std::string& header) {
  static const char* kIncludeDirs[] = {"include/", "arch/x86/include/", "include/uapi/", "arch/x86/include/uapi/"};
  std::set<std::string> headers;  // every header of the tree, relative
  std::vector<std::pair<std::string, std::vector<Include>>> files;
  fs::path root = fs::canonical(tree);
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    std::string rel = fs::relative(it->path(), root).string();
    if (it->is_directory()) {
      if (skipped(rel)) it.disable_recursion_pending();
      continue;
    }
    bool is_h = ends_with(rel, ".h"), is_c = ends_with(rel, ".c");
    if (!is_h && !is_c) continue;
    if (is_h) headers.insert(rel);
    files.emplace_back(rel, includes_of(read_text_file(it->path().string(), size_t(64) << 20)));
  }
  if (!headers.count(header)) fail("{}: no such header in {}", header, tree);
  // What an #include names, as the compiler finds it (-I order of Kbuild's
  // LINUXINCLUDE; "..." first next to the including file).
  auto resolve = [&](const std::string& from, const Include& inc) -> std::string {
    if (inc.quoted) {
      std::string local = (fs::path(from).parent_path() / inc.name).lexically_normal().string();
      if (headers.count(local)) return local;
    }
    for (const char* dir : kIncludeDirs)
      if (headers.count(dir + inc.name)) return dir + inc.name;
    return "";
  };
  std::map<std::string, std::vector<std::string>> included_by;  // header -> files including it
  for (const auto& [file, incs] : files)
    for (const auto& inc : incs) {
      std::string h = resolve(file, inc);
      if (!h.empty()) included_by[h].push_back(file);
    }
  HeaderIncluders out;
  std::set<std::string> seen = {header};
  std::deque<std::string> queue = {header};
  std::set<std::string> sources;
  while (!queue.empty()) {
    std::string h = queue.front();
    queue.pop_front();
    for (const auto& f : included_by[h]) {
      if (!seen.insert(f).second) continue;
      if (ends_with(f, ".c")) {
        sources.insert(f);
      } else {
        ++out.headers_through;
        queue.push_back(f);
      }
    }
  }
  out.sources.assign(sources.begin(), sources.end());
  return out;
}

bool object_depends_on(const std::string& tree, const std::string& object, const std::string& header) {
  fs::path o(object);
  std::string cmd_file = (fs::path(tree) / o.parent_path() / ("." + o.filename().string() + ".cmd")).string();
  if (!fs::is_regular_file(cmd_file)) fail("{}: Kbuild left no command file {}", object, cmd_file);
  std::string text = read_text_file(cmd_file, size_t(16) << 20);
  size_t deps = text.find("\ndeps_" + object + " := ");
  if (deps == std::string::npos) fail("{}: {} lists no dependencies (deps_{})", object, cmd_file, object);
  // One dependency a line, "  PATH \", up to the first line without "\".
  size_t i = text.find('\n', deps + 1);
  while (i != std::string::npos && i + 1 < text.size()) {
    size_t e = text.find('\n', i + 1);
    std::string line = text.substr(i + 1, e == std::string::npos ? std::string::npos : e - i - 1);
    std::string path = line;
    path.erase(0, path.find_first_not_of(" \t"));
    bool more = ends_with(path, "\\");
    if (more) path.pop_back();
    path.erase(path.find_last_not_of(" \t") + 1);
    if (starts_with(path, "./")) path = path.substr(2);
    if (path == header || (fs::path(path).is_absolute() && ends_with(path, "/" + header))) return true;
    if (!more) break;
    i = e;
  }
  return false;
}

std::map<std::string, std::string> add_header_users(const KernelTree& tree, DiffObjects& plan, const std::string& work_dir,
                                                    const std::function<void(const std::string&)>& progress) {
  fs::path work(work_dir);
  std::map<std::string, std::string> header_of;
  std::map<std::string, std::set<std::string>> configured;  // directory -> its objects
  size_t queries = 0;
  auto built = [&](const std::string& dir, const std::string& object) {
    auto it = configured.find(dir);
    if (it == configured.end()) {
      std::set<std::string> objs;
      if (fs::exists(fs::path(tree.dir()) / dir / "Makefile") || fs::exists(fs::path(tree.dir()) / dir / "Kbuild"))
        objs = tree.configured_objects(dir, (work / fmt::format("kbuild-objects-{}.log", queries++)).string());
      it = configured.emplace(dir, std::move(objs)).first;
    }
    return it->second.count(object) != 0;
  };
  for (const auto& h : plan.headers) {
    progress(fmt::format("finding the objects that include {}", h));
    HeaderIncluders inc = c_files_including(tree.dir(), h);
    if (inc.sources.size() > kMaxHeaderIncluders)
      fail("cannot build a live patch: {} is included by {} C files (through {} other headers); graft rebuilds at "
           "most {} objects for a header change: narrow the change, or write a --from-source patch",
           h, inc.sources.size(), inc.headers_through, kMaxHeaderObjects);
    std::vector<KernelObject> reached;
    for (const auto& src : inc.sources) {
      std::string object = src.substr(0, src.size() - 2) + ".o";
      // Objects of a subdirectory may be listed in the Makefile above it.
      fs::path dir = fs::path(src).parent_path();
      if (built(dir.string(), object) || (dir.has_parent_path() && built(dir.parent_path().string(), object)))
        reached.push_back({src, object});
    }
    if (reached.size() > kMaxHeaderObjects) {
      std::vector<std::string> names;
      for (size_t i = 0; i < reached.size() && i < 6; ++i) names.push_back(reached[i].object);
      fail("cannot build a live patch: {} is included by {} objects of this configuration ({}{}); graft rebuilds at "
           "most {} for a header change: narrow the change, or write a --from-source patch",
           h, reached.size(), join_names(names), reached.size() > names.size() ? ", ..." : "", kMaxHeaderObjects);
    }
    progress(fmt::format("{} reaches {} object(s) of this configuration ({} C files include it)", h, reached.size(),
                         inc.sources.size()));
    for (auto& k : reached) {
      bool listed = std::any_of(plan.objects.begin(), plan.objects.end(),
                                [&](const KernelObject& p) { return p.object == k.object; });
      if (!listed) {
        plan.objects.push_back(k);
        header_of[k.object] = h;
      }
    }
  }
  return header_of;
}

}  // namespace graft::kernel
