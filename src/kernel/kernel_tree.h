// A kernel source tree prepared for compiling single objects, cached
// between builds (graft build --kernel --from-diff).
//
// The operator's tree stays pristine: graft copies it once as hard links
// (cp -al; patch and Kbuild replace files rather than write into them),
// configures the copy with the given .config (make olddefconfig) and runs
// make prepare, all with the flags every later object is compiled with
// (one section per function and per variable, for the differ). The copy
// lives in CACHE/trees/KERNELVERSION-KEY, KEY a hash of the tree's path and
// version and of the .config, and is locked (flock) while a build uses it.
// A build applies its diff to the copy and reverses it before it ends.
#pragma once
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "common/unique_resource.h"

namespace graft::kernel {

class KernelTree {
 public:
  // Finds the prepared copy of `source` for `config`, or prepares it;
  // `cache` "" is $GRAFT_KERNEL_CACHE or /var/cache/graft/kernel.
  KernelTree(const std::string& source, const std::string& config, const std::string& cache,
             const std::function<void(const std::string&)>& progress);

  const std::string& dir() const { return dir_; }
  bool was_cached() const { return cached_; }
  double prepare_seconds() const { return prepare_seconds_; }

  // Compiles these objects (paths relative to the tree) afresh, the log
  // going to `log`; throws with the log's last lines if one fails.
  void compile(const std::vector<std::string>& objects, const std::string& log) const;
  // Runs patch in the tree (with --dry-run first when `dry_run`); returns
  // patch's exit status, its output in `log`.
  int patch(const std::string& diff, int strip, bool reverse, bool dry_run, const std::string& log) const;

  // The objects Kbuild builds from directory `dir` (relative) in this
  // configuration, into vmlinux or a module: its Makefile's real-obj-y
  // and real-obj-m as Kbuild computes them. `log` gets make's output.
  std::set<std::string> configured_objects(const std::string& dir, const std::string& log) const;

  // The flags added to the kernel's own (KCFLAGS).
  static const char* extra_cflags();

 private:
  void prepare(const std::string& source, const std::string& config,
               const std::function<void(const std::string&)>& progress);
  void make(const std::vector<std::string>& targets, const std::string& log, const std::string& what) const;

  std::string dir_;
  UniqueFd lock_;
  bool cached_ = false;
  double prepare_seconds_ = 0;
};

}  // namespace graft::kernel
