#include "builder/work_tree.h"

#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "builder/build_command.h"
#include "builder/build_path.h"
#include "builder/compiler.h"
#include "common/command_output.h"
#include "common/error.h"
#include "common/file.h"

namespace graft {

namespace fs = std::filesystem;

namespace {
std::string self_path() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) fail("cannot find the graft binary (/proc/self/exe)");
  return std::string(self, n);
}
}  // namespace

WorkTree::WorkTree(const WorkTreeSetup& setup, std::function<void(const std::string&)> progress)
    : side_objects_(setup.side_objects),
      reuse_(setup.reuse),
      extra_env_(setup.environment),
      build_path_(setup.build_path),
      progress_(std::move(progress)) {
  if (!fs::is_directory(setup.source)) fail("{}: not a directory", setup.source);
  if (setup.work.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "graft-diff-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) fail("cannot create a temporary directory: {}", errno_text(errno));
    root_ = tmpl;
  } else {
    root_ = fs::absolute(setup.work).lexically_normal().string();
    if (!reuse_ && fs::exists(root_) && !fs::is_empty(root_))
      fail("{}: the work directory must be empty or not exist", root_);
    fs::create_directories(root_);
    keep_ = true;
  }
  tree_ = root_ + "/tree";

  const char* cc = std::getenv("GRAFT_REAL_CC");
  const char* cxx = std::getenv("GRAFT_REAL_CXX");
  real_cc_ = find_program(cc && *cc ? cc : "cc");
  real_cxx_ = find_program(cxx && *cxx ? cxx : "c++");
  if (real_cc_.empty()) fail("no C compiler: `{}' is not on PATH", cc && *cc ? cc : "cc");

  if (!build_path_.empty())
    if (auto why = build_path_unavailable(build_path_, root_)) {
      progress_(fmt::format("building in place, not at {}: {}; a binary that records its build path "
                            "will differ from one built there",
                            build_path_, *why));
      build_path_.clear();
    }
  cache_key_ = make_cache_key(setup.cache_key);
  std::string done = root_ + "/original.done";
  if (reuse_ && fs::exists(done) && read_text_file(done) == cache_key_) {
    load_original_build();
  } else {
    if (reuse_ && fs::exists(done))
      progress_(stale_cache_reason(read_text_file(done)));
    else if (reuse_ && fs::exists(root_ + "/original.index"))
      progress_(fmt::format("the original build cached in {} was left with a diff applied (an "
                            "interrupted run): building it again",
                            root_));
    start_afresh(setup);
  }
  // The links follow graft's binary, which may have moved since a cached build.
  std::string self = self_path();
  fs::create_directories(root_ + "/bin");
  for (const char* link : {"graft-cc", "graft-c++", "cc", "gcc", "c++", "g++"}) {
    std::error_code ec;
    fs::remove(root_ + "/bin/" + link, ec);
    fs::create_symlink(self, root_ + "/bin/" + link);
  }
}

void WorkTree::start_afresh(const WorkTreeSetup& setup) {
  if (reuse_) {
    for (const auto& entry : fs::directory_iterator(root_)) fs::remove_all(entry.path());
  }
  fs::create_directories(root_ + "/original");
  const std::string& source = setup.source;
  bool from_git = setup.clean.empty() && copy_git_files(source);
  if (!from_git) {
    progress_("copying " + source + " to " + tree_);
    if (run_command({"cp", "-a", fs::path(source).string() + "/.", tree_}) != 0)
      fail("cannot copy {} to {}", source, tree_);
  }
  if (!setup.clean.empty()) {
    progress_("cleaning the copy: " + setup.clean);
    std::string log = root_ + "/clean.log";
    int rc = run_in_directory(tree_, {"sh", "-c", setup.clean}, {}, log);
    if (rc != 0)
      fail("the clean command `{}' failed in {} (exit {}); last lines of {}:{}", setup.clean,
           tree_, rc, log, tail_of_file(log, 15));
  }
  // Objects of an earlier build would keep the build from compiling through
  // the wrapper, and the original objects would not be graft's to compare.
  auto outputs = build_outputs();
  if (!outputs.empty()) {
    std::string example = outputs.front();
    bool debian = fs::exists(fs::path(source) / "debian/rules");
    fail("{} holds the outputs of an earlier build ({} files, e.g. {}){}; graft builds the "
         "pristine tree the target was built from: name the command that cleans it (--clean "
         "\"{}\"), or give a git work tree (graft copies only the files git does not ignore), or "
         "unpack the source again",
         source, outputs.size(), example, setup.clean.empty() ? "" : " even after --clean",
         debian ? "debian/rules clean" : "make distclean");
  }
}

void WorkTree::load_original_build() {
  std::string index = read_text_file(root_ + "/original.index");
  auto recorded = records(root_ + "/original.records");
  std::map<std::string, const CompileRecord*> by_object;
  for (const auto& r : recorded) by_object[r.object] = &r;
  for (const auto& line : split_lines(index)) {
    size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    auto it = by_object.find(line.substr(0, tab));
    std::string copy = line.substr(tab + 1);
    if (it == by_object.end() || !fs::is_regular_file(copy))
      fail("{}: the cached original build is incomplete ({}); remove {} to build it again",
           root_, copy, root_);
    saved_[it->first] = {*it->second, copy};
  }
  if (saved_.empty()) fail("{}: the cached original build lists no object; remove it to build it again", root_);
  reused_ = true;
}

// The files git would keep of a work tree: tracked ones as they are in it
// (local edits included) and untracked ones it does not ignore.
bool WorkTree::copy_git_files(const std::string& source) {
  if (!command_output(source, {"git", "rev-parse", "--is-inside-work-tree"})) return false;
  auto listed = command_output(source, {"git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"});
  if (!listed) return false;
  const std::string& names = *listed;
  size_t copied = 0;
  for (size_t start = 0; start < names.size();) {
    size_t end = names.find('\0', start);
    if (end == std::string::npos) end = names.size();
    std::string rel = names.substr(start, end - start);
    start = end + 1;
    if (rel.empty()) continue;
    fs::path from = fs::path(source) / rel, to = fs::path(tree_) / rel;
    if (!fs::exists(fs::symlink_status(from))) continue;  // deleted, not yet committed
    fs::create_directories(to.parent_path());
    fs::copy(from, to, fs::copy_options::copy_symlinks | fs::copy_options::overwrite_existing);
    ++copied;
  }
  progress_(fmt::format("copied the {} files git keeps of {} to {} (ignored build outputs left "
                        "out)",
                        copied, source, tree_));
  return true;
}

std::vector<std::string> WorkTree::build_outputs() const {
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(tree_); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_directory() && it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file() || it->is_symlink()) continue;
    std::string ext = it->path().extension().string();
    if (ext == ".o" || ext == ".lo" || ext == ".obj")
      out.push_back(fs::path(it->path()).lexically_relative(tree_).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

WorkTree::~WorkTree() {
  if (keep_) return;
  std::error_code ec;
  fs::remove_all(root_, ec);
}

std::map<std::string, std::string> WorkTree::build_environment(const char* phase) const {
  const char* path = std::getenv("PATH");
  std::map<std::string, std::string> env = extra_env_;
  env["CC"] = root_ + "/bin/graft-cc";
  env["CXX"] = root_ + "/bin/graft-c++";
  env["PATH"] = root_ + "/bin:" + (path ? path : "/usr/bin:/bin");
  env["GRAFT_REAL_CC"] = real_cc_;
  env["GRAFT_REAL_CXX"] = real_cxx_.empty() ? "c++" : real_cxx_;
  env["GRAFT_COMPILE_LOG"] = fmt::format("{}/{}.records", root_, phase);
  if (side_objects_) env["GRAFT_SIDE_OBJECTS"] = side_dir(phase);
  return env;
}

std::vector<CompileRecord> WorkTree::records(const std::string& log) const {
  auto out = read_compile_log(log);
  if (!build_path_.empty())
    for (auto& r : out) relocate_record(r, build_path_, tree_);
  return out;
}

std::string WorkTree::side_dir(const char* phase) const { return root_ + "/side-" + phase; }

void WorkTree::run_build(const std::string& command, const char* phase) {
  std::string log = fmt::format("{}/build-{}.log", root_, phase);
  std::vector<std::string> argv = {"sh", "-c", command};
  if (!build_path_.empty()) argv = command_at_build_path(tree_, build_path_, command);
  int rc = run_in_directory(tree_, argv, build_environment(phase), log);
  if (rc != 0)
    fail("the build `{}' failed in {} (exit {}); last lines of {}:{}", command, tree_, rc, log,
         tail_of_file(log, 15));
}

// What changed since the cached build: the first lines of the key that
// are new.
std::string WorkTree::stale_cache_reason(const std::string& old_key) const {
  auto old_lines = split_lines(old_key);
  std::vector<std::string> now;
  for (const auto& line : split_lines(cache_key_))
    if (std::find(old_lines.begin(), old_lines.end(), line) == old_lines.end()) now.push_back(line);
  auto shown = now.begin() + std::min<std::ptrdiff_t>(std::ssize(now), 3);
  std::string changed = now.empty() ? "fewer build dependencies"
                                    : fmt::format("now {}{}", fmt::join(now.begin(), shown, ", "),
                                                  shown != now.end() ? ", ..." : "");
  return fmt::format("the original build cached in {} was made with another compiler or other build "
                     "dependencies ({}): building it again",
                     root_, changed);
}

std::string WorkTree::make_cache_key(const std::string& extra) const {
  auto version = command_output("/", {real_cc_, "--version"});
  std::string first = version ? version->substr(0, version->find('\n')) : real_cc_;
  return "graft work tree 1\n" + first + "\n" + (build_path_.empty() ? "" : "built at " + build_path_ + "\n") + extra;
}

bool WorkTree::build_original(const std::string& command) {
  if (reused_) {
    progress_(fmt::format("reusing the original build cached in {} ({} objects)", root_, saved_.size()));
    return false;
  }
  progress_("building the original tree" + (build_path_.empty() ? "" : " at " + build_path_) + ": " + command);
  if (side_objects_) fs::create_directories(side_dir("original"));
  run_build(command, "original");
  size_t n = 0;
  std::string index;
  for (const auto& r : records(root_ + "/original.records")) {
    // A configure test, since removed (its side object stays).
    if (!fs::is_regular_file(r.object) || !fs::is_regular_file(r.compared)) continue;
    std::string copy = fmt::format("{}/original/{}-{}", root_, n++, fs::path(r.compared).filename().string());
    fs::copy_file(r.compared, copy, fs::copy_options::overwrite_existing);
    saved_[r.object] = {r, copy};
    index += r.object + "\t" + copy + "\n";
  }
  if (saved_.empty())
    fail("the build `{}' compiled no object through CC/CXX ({}); graft needs a build that "
         "compiles each source with -c and honours CC and CXX",
         command, tree_);
  if (reuse_) {
    write_text_file(root_ + "/original.index", index);
    write_text_file(root_ + "/original.done", cache_key_);
  }
  return true;
}

std::vector<CompileRecord> WorkTree::original_units() const {
  std::vector<CompileRecord> out;
  for (const auto& [object, saved] : saved_) {
    CompileRecord r = saved.first;
    r.compared = saved.second;
    out.push_back(std::move(r));
  }
  return out;
}

// The -pN with which the diff applies to the copy (patch --dry-run), or -1.
int WorkTree::patch_strip(const std::string& diff) const {
  std::string log = root_ + "/patch.log";
  for (int strip : {1, 0, 2, 3})
    if (run_in_directory(tree_, {"patch", "-p" + std::to_string(strip), "--dry-run", "--batch",
                                 "--forward", "-i", diff},
                         {}, log) == 0)
      return strip;
  return -1;
}

void WorkTree::check_diff_applies(const std::string& diff_file) const {
  if (patch_strip(fs::absolute(diff_file).string()) < 0)
    fail("{}: does not apply to {} with patch -p1, -p0, -p2 or -p3 (nothing was built):{}",
         diff_file, tree_, tail_of_file(root_ + "/patch.log", 10));
}

std::vector<DiffFile> WorkTree::apply_diff(const std::string& diff_file) {
  std::string diff = fs::absolute(diff_file).string();
  std::string text = read_text_file(diff);
  std::string log = root_ + "/patch.log";
  int strip = patch_strip(diff);
  if (strip < 0)
    fail("{}: does not apply to {} with patch -p1, -p0, -p2 or -p3:{}", diff_file, tree_,
         tail_of_file(log, 10));
  std::string p = "-p" + std::to_string(strip);
  // From here the cached tree is not the original one until reverse_diff.
  if (reuse_) fs::remove(root_ + "/original.done");
  if (run_in_directory(tree_, {"patch", p, "--batch", "--forward", "-i", diff}, {}, log) != 0)
    fail("{}: patch {} failed in {}:{}", diff_file, p, tree_, tail_of_file(log, 10));
  applied_diff_ = diff;
  applied_strip_ = strip;
  progress_(fmt::format("applied {} with patch {}", diff_file, p));
  auto files = parse_unified_diff(text, strip);
  if (files.empty()) fail("{}: the diff names no file", diff_file);
  return files;
}

std::vector<std::string> WorkTree::dependencies(const CompileRecord& r) const {
  // The recorded command, preprocessing only, writing make dependencies.
  std::vector<std::string> argv;
  static const std::set<std::string> drop_with_value = {"-o", "-MF", "-MT", "-MQ"};
  static const std::set<std::string> drop = {"-c", "-MD", "-MMD", "-MP"};
  for (size_t i = 0; i < r.argv.size(); ++i) {
    if (drop_with_value.count(r.argv[i])) { ++i; continue; }
    if (drop.count(r.argv[i])) continue;
    argv.push_back(r.argv[i]);
  }
  std::string out = root_ + "/deps.d";
  argv.insert(argv.end(), {"-M", "-MF", out, "-o", "/dev/null"});
  if (run_in_directory(r.cwd, argv, {}, root_ + "/deps.log") != 0) return {};
  std::vector<std::string> deps;
  std::string text = read_text_file(out);
  std::string word;
  auto flush = [&] {
    if (!word.empty() && word.back() != ':' && word != "\\")
      deps.push_back((fs::path(r.cwd) / word).lexically_normal().string());
    word.clear();
  };
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\t') flush();
    else word.push_back(c);
  }
  flush();
  return deps;
}

void WorkTree::reverse_diff() {
  if (applied_strip_ < 0) return;
  std::string log = root_ + "/patch.log";
  std::string p = "-p" + std::to_string(applied_strip_);
  if (run_in_directory(tree_, {"patch", "-R", p, "--batch", "-i", applied_diff_}, {}, log) != 0) {
    progress_(fmt::format("could not take {} out of the cached tree again; the next build starts "
                          "over", applied_diff_));
    return;
  }
  applied_strip_ = -1;
  if (reuse_) write_text_file(root_ + "/original.done", cache_key_);
}

void WorkTree::build_patched(const std::string& command, const std::vector<DiffFile>& touched) {
  progress_("building the patched tree" + (build_path_.empty() ? "" : " at " + build_path_) + ": " + command);
  std::string records = root_ + "/patched.records";
  std::error_code ec;
  fs::remove(records, ec);
  if (side_objects_) {
    fs::remove_all(side_dir("patched"), ec);
    fs::create_directories(side_dir("patched"));
  }
  run_build(command, "patched");
  std::set<std::string> rebuilt, touched_paths;
  for (const auto& r : this->records(records)) rebuilt.insert(r.object);
  for (const auto& f : touched) touched_paths.insert((fs::path(tree_) / f.path).lexically_normal().string());
  std::set<std::string> sources;
  for (const auto& [object, saved] : saved_) sources.insert(saved.first.source);
  bool headers_touched = false;
  for (const auto& t : touched_paths) headers_touched |= !sources.count(t);
  // Units the build did not recompile although the diff touched one of
  // their inputs: a Makefile without header dependencies.
  for (const auto& [object, saved] : saved_) {
    const CompileRecord& r = saved.first;
    if (rebuilt.count(object)) continue;
    bool affected = touched_paths.count(r.source) > 0;
    if (!affected && headers_touched) {
      for (const auto& d : dependencies(r))
        if (touched_paths.count(d)) affected = true;
    }
    if (!affected) continue;
    progress_("recompiling " + fs::path(r.source).filename().string() +
              " (the build did not, although the diff touches what it includes)");
    int rc = run_in_directory(r.cwd, r.argv, {}, root_ + "/build-patched.log");
    if (rc != 0)
      fail("recompiling {} failed (exit {}):{}", r.source, rc, tail_of_file(root_ + "/build-patched.log", 15));
    append_compile_record(records, r);
    rebuilt.insert(object);
  }
}

std::vector<UnitObjects> WorkTree::changed_units() const {
  std::map<std::string, UnitObjects> by_object;
  for (const auto& r : records(root_ + "/patched.records")) {
    if (!fs::is_regular_file(r.object) || !fs::is_regular_file(r.compared)) continue;
    UnitObjects u;
    u.record = r;
    if (auto it = saved_.find(r.object); it != saved_.end()) u.original = it->second.second;
    by_object[r.object] = u;
  }
  std::vector<UnitObjects> out;
  for (auto& [o, u] : by_object) out.push_back(std::move(u));
  return out;
}

}  // namespace graft
