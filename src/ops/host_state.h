// What sync and the daemon leave for `graft status` to read, in the store's
// .state directory: the last sync (time, result, counts) and the processes a
// patch could not be applied to, with the reason (kept while the process
// lives; a reused pid is told apart by its start time).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace graft::ops {

struct SyncRecord {
  int64_t time = 0;  // unix time
  bool ok = false;
  size_t applied = 0, already = 0, failed = 0;
  std::string by;  // "sync" or "daemon"
};

struct FailureKey {
  pid_t pid = 0;
  uint64_t start_time = 0;
  std::string patch_id;
  auto operator<=>(const FailureKey&) const = default;
};

class HostState {
 public:
  explicit HostState(const std::string& store_dir);
  // Reads what is there (nothing if missing or unreadable).
  void load();
  // Writes both files atomically; drops failures of processes that are gone.
  // Throws if the directory cannot be written.
  void save();

  std::optional<SyncRecord> last_sync;
  std::map<FailureKey, std::string> failures;

  const std::string* failure(pid_t pid, uint64_t start_time, const std::string& patch_id) const;

 private:
  std::string dir_;
};

}  // namespace graft::ops
