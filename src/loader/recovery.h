// Repairs what an interrupted graft (killed, crashed, machine under OOM)
// left in a process. The write protocol makes every such state readable
// from the target alone:
//
//   apply:  region mapped (empty) → record written, state "loading" → image
//           → [all threads stopped] jumps written → state "applied"
//   revert: [all threads stopped] state "reverting" → original entries
//           written → [threads run] region unmapped
//
// so a later graft (any apply or revert, or `graft recover`) finds:
//   - a graft region whose first page is still zero: graft died before
//     writing anything there; nothing can lead into it: unmapped;
//   - a record still "loading": the apply did not finish. Rolled back: any
//     entry already redirected is restored (under the stop model, as a
//     revert), then the region is unmapped;
//   - a record "reverting": the revert did not finish. Completed the same way;
//   - a memfd of graft's still open in the process (graft died between
//     creating and mapping it): closed.
// Only a graft that holds the process traced can act, and ptrace admits one
// tracer: a record found "loading" by the tracer is never one in progress.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "loader/operations.h"
#include "loader/target_session.h"

namespace graft {

struct RecoveryResult {
  pid_t pid = 0;
  bool ok = false;
  std::string error;
  std::vector<std::string> actions;  // what was repaired, one line each
};

// True if the process holds anything an interrupted graft left behind.
bool needs_recovery(pid_t pid);
RecoveryResult recover_process(pid_t pid, const OperationOptions& options);
// Every process for which needs_recovery() holds.
std::vector<pid_t> processes_needing_recovery();
// Before an operation on the (detached) session's process: repairs first,
// if an interrupted graft left something there, and reads the process
// again. Throws if the repair fails (the operation must not go on then).
void recover_before(TargetSession& session, const OperationOptions& options, OperationResult& result);

}  // namespace graft
