// What graft has left in a process: its mappings (patch regions, the
// runtime, memfds) and the state of each patch's record. Compared before
// and after a failed operation, it says whether the process really was left
// unchanged, and if not, what is left there.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace graft {

struct Footprint {
  std::vector<std::string> mappings;  // "start-end perms name" of each graft mapping
  std::vector<std::string> records;   // "patch NAME (ID) STATE"
  std::vector<std::string> problems;  // regions whose record cannot be read
  bool operator==(const Footprint&) const = default;
};

// nullopt if the process is gone or cannot be read.
std::optional<Footprint> read_footprint(pid_t pid);

// What `after' holds that `before' did not, for an operator: "a record of
// patch fix (id) in state loading, 3 graft mappings".
std::string describe_change(const Footprint& before, const Footprint& after);

// After a failed operation: `unchanged' true if the process holds what it
// held `before', false (and `left' says what is new) if not; nullopt if
// either could not be read (the process is gone).
void verify_unchanged(pid_t pid, const std::optional<Footprint>& before, std::optional<bool>& unchanged,
                      std::string& left);

// After a failed `operation' ("apply", "revert"): a step that failed because
// the process died says so first (`process N exited during the apply
// (...)', code no_such_process): that, not the failed step, is what the
// operator must know. An error whose code already names the process's state
// is kept.
void name_an_exit(pid_t pid, const char* operation, std::string& error, ErrorCode& code);

}  // namespace graft
