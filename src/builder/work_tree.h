// The work directory of `graft build --from-diff`:
//
//   WORK/tree        a copy of the source tree, built twice in place: first
//                    as it is, then with the diff applied (so both builds see
//                    the same paths: __FILE__, debug info)
//   WORK/original/   the objects of the first build, saved before the second
//   WORK/side-*/     with side objects: graft's compilations of each unit,
//                    beside the build's own (see compile_log.h)
//   WORK/bin/        graft-cc, graft-c++ (and cc, gcc, c++, g++ for builds
//                    that name the compiler themselves): links to graft
//   WORK/*.log       compile records and the output of each step
//
// The tree may be built as if it were at another path (build_path.h), as
// Debian builds its packages.
//
// The copy must be the pristine tree the target was built from: the files
// of a git work tree (tracked and untracked, not the ignored build
// outputs), or a copy cleaned by the operator's --clean command. Deleting
// build outputs by guess cannot be made reliable (a stamp file survives the
// objects it stands for), so a copy that still holds them is refused.
//
// A reusable work directory (a cache) keeps the tree and the original
// build's objects for the next diff: the diff is reversed after the patched
// build, and the build command must then rebuild from clean (as a Debian
// package's is: its rules may copy the sources before compiling them). An
// interrupted run leaves no `original.done', and the next one starts over.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "builder/compile_log.h"
#include "differ/unified_diff.h"

namespace graft {

struct UnitObjects {
  CompileRecord record;  // of the patched build
  std::string original;  // saved object of the first build; "" for a new unit
};

struct WorkTreeSetup {
  std::string source;  // the pristine tree
  std::string work;    // "": a temporary directory, removed at destruction
  std::string clean;   // if not empty, run in the copy (sh -c) before anything else
  bool side_objects = false;  // the build's outputs as its recipe makes them
  bool reuse = false;         // `work` is a cache: reuse an original build done there
  std::map<std::string, std::string> environment;  // more variables for the build
  // If not empty, the builds see the tree at this path (build_path.h); if
  // this machine cannot, they run in place and progress says so.
  std::string build_path;
  // What else a cached original build depends on (the versions of a
  // package's build dependencies): another value builds it again.
  std::string cache_key;
};

class WorkTree {
 public:
  WorkTree(const WorkTreeSetup& setup, std::function<void(const std::string&)> progress);
  ~WorkTree();
  WorkTree(const WorkTree&) = delete;
  WorkTree& operator=(const WorkTree&) = delete;

  const std::string& root() const { return root_; }
  const std::string& tree() const { return tree_; }

  // Refuses, before anything is built, a diff that does not apply.
  void check_diff_applies(const std::string& diff_file) const;
  // Returns false when a cached original build was reused instead.
  bool build_original(const std::string& command);
  // Applies the diff (patch -p1, else the first -pN that applies) and
  // returns what it touches.
  std::vector<DiffFile> apply_diff(const std::string& diff_file);
  // Builds again; units whose sources or headers the diff touched but the
  // build did not recompile (no header dependencies) are recompiled.
  void build_patched(const std::string& command, const std::vector<DiffFile>& touched);
  // The objects the second build produced, with their originals.
  std::vector<UnitObjects> changed_units() const;
  // The compile records of the original build (its saved objects).
  std::vector<CompileRecord> original_units() const;
  size_t original_objects() const { return saved_.size(); }
  // In a reusable work directory: takes the diff out of the tree again, so
  // that the next diff starts from the original sources.
  void reverse_diff();

  void keep() { keep_ = true; }

 private:
  bool copy_git_files(const std::string& source);
  std::vector<std::string> build_outputs() const;
  int patch_strip(const std::string& diff) const;
  // `phase` is "original" or "patched".
  void run_build(const std::string& command, const char* phase);
  std::map<std::string, std::string> build_environment(const char* phase) const;
  // What a cached original build depends on besides the tree: graft's
  // record format, the compiler, the build path and setup.cache_key.
  std::string make_cache_key(const std::string& extra) const;
  std::string stale_cache_reason(const std::string& old_key) const;
  std::vector<std::string> dependencies(const CompileRecord& r) const;
  // The compile log of a phase, its paths those of the tree.
  std::vector<CompileRecord> records(const std::string& log) const;

  void load_original_build();
  void start_afresh(const WorkTreeSetup& setup);
  std::string side_dir(const char* phase) const;

  std::string root_, tree_;
  bool keep_ = false;
  bool side_objects_ = false, reuse_ = false, reused_ = false;
  std::map<std::string, std::string> extra_env_;
  std::string build_path_;
  std::string cache_key_;  // what original.done holds (make_cache_key, once)
  std::string applied_diff_;  // with its -pN, to reverse it
  int applied_strip_ = -1;
  std::function<void(const std::string&)> progress_;
  std::string real_cc_, real_cxx_;
  std::map<std::string, std::pair<CompileRecord, std::string>> saved_;  // object -> (record, saved copy)
};

}  // namespace graft
