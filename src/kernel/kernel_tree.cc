#include "kernel/kernel_tree.h"

#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "builder/build_command.h"
#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"

namespace graft::kernel {

namespace fs = std::filesystem;

namespace {

int jobs() { return int(std::max(1L, std::min(2L, sysconf(_SC_NPROCESSORS_ONLN)))); }

// VERSION.PATCHLEVEL.SUBLEVEL from the top Makefile.
std::string kernel_version(const std::string& source) {
  std::string makefile = read_text_file(source + "/Makefile", 1 << 20);
  std::string out;
  for (const char* key : {"VERSION", "PATCHLEVEL", "SUBLEVEL"}) {
    std::smatch m;
    std::regex re(std::string("(^|\n)") + key + " = ([0-9]+)");
    if (!std::regex_search(makefile, m, re)) fail("{}/Makefile: no {} line: not a Linux source tree", source, key);
    out += (out.empty() ? "" : ".") + m[2].str();
  }
  return out;
}

}  // namespace

const char* KernelTree::extra_cflags() { return "-ffunction-sections -fdata-sections"; }

KernelTree::KernelTree(const std::string& source_arg, const std::string& config,
                       const std::string& cache_arg, const std::function<void(const std::string&)>& progress) {
  if (!fs::is_directory(source_arg)) fail("{}: no such directory (the kernel source tree)", source_arg);
  std::string source = fs::canonical(source_arg).string();
  std::string version = kernel_version(source);
  if (fs::exists(source + "/include/generated") || fs::exists(source + "/.config"))
    fail("{}: holds a configured or built tree (.config, include/generated); graft needs the pristine "
         "source (make mrproper, or unpack it again)",
         source);
  if (!fs::is_regular_file(config)) fail("{}: no such file (the kernel's .config)", config);
  std::string config_text = read_text_file(config, 16 << 20);
  std::string changelog;
  if (fs::exists(source + "/debian/changelog")) {
    std::ifstream in(source + "/debian/changelog");
    std::getline(in, changelog);
  }
  std::string key_text = source + "\n" + version + "\n" + changelog + "\n" + config_text;
  std::string key = sha256_hex({reinterpret_cast<const uint8_t*>(key_text.data()), key_text.size()}).substr(0, 16);
  std::string cache = cache_arg;
  if (cache.empty()) {
    const char* env = std::getenv("GRAFT_KERNEL_CACHE");
    cache = env && *env ? env : "/var/cache/graft/kernel";
  }
  fs::create_directories(cache + "/trees");
  dir_ = cache + "/trees/" + version + "-" + key;

  std::string lock_path = dir_ + ".lock";
  lock_ = UniqueFd(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (lock_.get() < 0) fail("cannot open {}: {}", lock_path, errno_text(errno));
  if (flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    progress(fmt::format("waiting for another build using {}", dir_));
    if (flock(lock_.get(), LOCK_EX) != 0) fail("cannot lock {}: {}", lock_path, errno_text(errno));
  }
  if (fs::exists(dir_ + "/.graft-prepared")) {
    cached_ = true;
    progress(fmt::format("using the prepared tree {}", dir_));
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  prepare(source, config, progress);
  prepare_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void KernelTree::make(const std::vector<std::string>& targets, const std::string& log, const std::string& what) const {
  std::vector<std::string> argv = {"make", fmt::format("-j{}", jobs()),
                                   std::string("KCFLAGS=") + extra_cflags()};
  argv.insert(argv.end(), targets.begin(), targets.end());
  int rc = run_in_directory(dir_, argv, {{"LC_ALL", "C"}}, log);
  if (rc == -1) fail("cannot run make in {}", dir_);
  if (rc != 0) fail("{}: make exited with {} in {}; last lines of {}:{}", what, rc, dir_, log, tail_of_file(log, 20));
}

void KernelTree::prepare(const std::string& source, const std::string& config,
                         const std::function<void(const std::string&)>& progress) {
  std::string tmp = dir_ + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  std::string log = dir_ + ".prepare.log";
  fs::remove(log, ec);
  progress(fmt::format("copying {} to {} (hard links)", source, dir_));
  if (run_in_directory("/", {"cp", "-al", source, tmp}, {}, log) != 0)
    fail("cannot copy {} to {}:{}", source, tmp, tail_of_file(log, 5));
  fs::copy_file(config, tmp + "/.config", fs::copy_options::overwrite_existing);
  std::string prepared = dir_;
  dir_ = tmp;
  progress("configuring it (make olddefconfig)");
  make({"olddefconfig"}, log, "make olddefconfig");
  progress("preparing it for objects (make prepare)");
  make({"prepare"}, log, "make prepare");
  dir_ = prepared;
  fs::rename(tmp, dir_);
  std::ofstream(dir_ + "/.graft-prepared") << source << "\n" << config << "\n";
}

void KernelTree::compile(const std::vector<std::string>& objects, const std::string& log) const {
  for (const auto& o : objects) {
    std::error_code ec;
    fs::remove(dir_ + "/" + o, ec);
  }
  std::string what = objects.size() == 1 ? objects[0] : fmt::format("{} objects", objects.size());
  make(objects, log, "compiling " + what);
  for (const auto& o : objects)
    if (!fs::exists(dir_ + "/" + o)) fail("make did not produce {} in {} (see {})", o, dir_, log);
}

std::set<std::string> KernelTree::configured_objects(const std::string& dir, const std::string& log) const {
  // Kbuild's own Makefile.build reads the directory's Makefile with the
  // configuration; a second makefile adds a target that prints the lists.
  std::string mk = log + ".mk";
  std::ofstream(mk) << "graft-print-objects:\n\t@echo 'graft-objects:' $(real-obj-y) $(real-obj-m)\n";
  int rc = run_in_directory(dir_, {"make", "-s", "-f", "scripts/Makefile.build", "-f", mk, "obj=" + dir, "srctree=.",
                                   "objtree=.", "graft-print-objects"},
                            {{"LC_ALL", "C"}}, log);
  if (rc != 0) fail("cannot read the objects of {} from Kbuild (make exited with {}):{}", dir, rc, tail_of_file(log, 5));
  std::string text = read_text_file(log, size_t(16) << 20);
  size_t at = text.find("graft-objects:");
  if (at == std::string::npos) fail("Kbuild printed no object list for {} (see {})", dir, log);
  std::set<std::string> out;
  std::string line = text.substr(at + 14, text.find('\n', at) - at - 14);
  size_t i = 0;
  while (i < line.size()) {
    size_t e = line.find(' ', i);
    if (e == std::string::npos) e = line.size();
    if (e > i) out.insert(line.substr(i, e - i));
    i = e + 1;
  }
  return out;
}

int KernelTree::patch(const std::string& diff, int strip, bool reverse, bool dry_run, const std::string& log) const {
  std::vector<std::string> argv = {"patch", "-p" + std::to_string(strip), "--batch", "--forward", "-i", diff};
  if (reverse) argv[3] = "--reverse";
  if (dry_run) argv.push_back("--dry-run");
  return run_in_directory(dir_, argv, {}, log);
}

}  // namespace graft::kernel
