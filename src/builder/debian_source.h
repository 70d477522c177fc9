// `graft build --from-diff --debian-source`: the original tree is a Debian
// source package, built the way Debian builds it.
//
// The source is the exact version the target came from: fetched with
// `apt-get source PKG=VERSION` (the version of the installed package that
// owns the target unless named), or an unpacked source tree the operator
// gives (after `quilt pop`, say). It is built with dpkg-buildpackage, so
// that debian/rules, dpkg-buildflags and the environment are Debian's; the
// compiler wrapper compiles every unit a second time for the comparison
// (side objects), so the build's own outputs are Debian's binaries. Debian
// 12 builds reproducibly: a rebuilt binary with the target's build-id is
// the target, bit for bit, and its symbol table and DWARF serve as the
// stripped target's debug file.
//
// Everything lives in a cache ($GRAFT_DEBIAN_CACHE, default
// /var/cache/graft/debian), one folder per source and version: the
// fetched source, the work tree with the original build (reused by the next
// diff) and the logs.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/unique_resource.h"

namespace graft {

struct DebianSource {
  std::string package, version;  // of the source package
  std::string tree;              // the unpacked source: debian/ inside
  std::string cache;             // its folder in the cache
  UniqueFd lock;                 // held while building there
};

// `spec`: a directory with an unpacked source package, or PKG[=VERSION].
// Refuses, naming the command that fixes it, when deb-src is not enabled,
// the version is not in the archive or build dependencies are missing.
DebianSource prepare_debian_source(const std::string& spec, const std::string& target,
                                   const std::function<void(const std::string&)>& progress);

// dpkg-buildpackage running debian/rules clean then build-arch, and its
// environment: every build starts clean, as a Debian build does (rules may
// copy the sources before compiling them), and skips the test suite.
std::string debian_build_command();
// The installed versions of what the build of `tree` depends on (its
// Build-Depends and Build-Depends-Arch, and the toolchain's packages), one
// "PACKAGE=VERSION" line each: a cached build made with others is stale (a
// newer libssl-dev changes the binaries that include its headers).
std::string build_dependency_versions(const std::string& tree);
std::map<std::string, std::string> debian_build_environment();

// An ELF binary (executable or shared object) a build made.
struct BuiltBinary {
  std::string path;  // relative to the tree
  std::string build_id;
};

// After the original build: records the binaries it made in the cache, and
// keeps each one with a symbol table as the debug file of its build-id
// (under graft_debug_root()).
std::vector<BuiltBinary> record_built_binaries(const std::string& tree, const std::string& cache);
std::vector<BuiltBinary> recorded_binaries(const std::string& cache);

}  // namespace graft
