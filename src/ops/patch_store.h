// The patch store: the directory that says which patches this machine wants
// applied (default /var/lib/graft/patches, --store). Each patch is kept as
// ID.graft, beside ID.json with what the store adds to it: its place in the
// stacking order, an optional roll-out tag, when it was added. `graft sync`
// and `graft daemon` make every process match the store; `graft status`
// compares them.
//
// The directory belongs to root and is written only by `graft store`
// (files are renamed into place, so a reader never sees half a file).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "patch/patch.h"
#include "security/policy.h"

namespace graft::ops {

constexpr const char* kDefaultStoreDir = "/var/lib/graft/patches";

struct StoredPatch {
  std::string id, name, sha256;
  std::string file;           // ID.graft in the store
  std::string target_path;    // where the patch was built against
  std::string build_id;       // what it is applied to
  bool cumulative = false;
  std::string signer;         // "" unsigned
  std::string tag;            // "" applies everywhere; see SyncOptions::tags
  uint64_t seq = 0;           // stacking order in the store: lower first
  int64_t added_at = 0;       // unix time
  std::string source;         // the file name it was added from
};

// Why `store add` refuses a file (exit status 3 for a policy refusal, 2
// otherwise: see docs/cli.md).
struct StoreRefusal : Error {
  enum class Kind { Damaged, Policy, NoTarget } kind;
  StoreRefusal(Kind k, const std::string& what) : Error(what), kind(k) {}
};

struct AddResult {
  StoredPatch patch;
  bool changed = false;  // false: the same patch with the same tag was there
};

class PatchStore {
 public:
  explicit PatchStore(std::string dir);
  const std::string& dir() const { return dir_; }

  // Every stored patch, in stacking order. A file that no longer parses is
  // listed in `problems` and left out.
  std::vector<StoredPatch> list(std::vector<std::string>* problems = nullptr) const;
  // Verifies the file (format, the policy's signature rules, a target
  // installed here: the file at its target path with its build-id, or a
  // running process mapping it) and stores it last in the stacking order.
  // Adding a stored patch again only changes its tag.
  AddResult add(const std::string& file, const std::string& tag, const Policy& policy);
  // By id (or unique prefix) or name; throws if none or several match.
  StoredPatch remove(const std::string& which);
  AddResult set_tag(const std::string& which, const std::string& tag);
  StoredPatch find(const std::string& which) const;
  // The stored file, parsed again (it may have changed on disk).
  Patch load(const StoredPatch& p) const;

 private:
  void write_meta(const StoredPatch& p) const;
  std::string dir_;
};

// Whether a target with this build-id is installed here: the file the patch
// names has it, or a running process maps it. Returns what was found, or
// nullopt.
std::optional<std::string> installed_target(const Patch& patch);

// Writes a file by renaming a temporary one into place (mode 0644).
void write_file_atomically(const std::string& path, const std::string& data);

}  // namespace graft::ops
