// One graft at a time per process: an exclusive flock(2) on
// /run/graft/PID.lock (for root; other users: $XDG_RUNTIME_DIR/graft, or
// /tmp/graft-UID) held for a whole apply or revert, planning included, so
// that a second graft plans against what the first one left. The second
// waits up to its timeout, then refuses, naming the holder. ptrace's single
// tracer is the backstop across users, whose lock directories differ.
#pragma once
#include <sys/types.h>

#include <string>

#include "common/unique_resource.h"

namespace graft {

class ProcessLock {
 public:
  ProcessLock(pid_t pid, double timeout_s);  // throws graft::Error on timeout
  ~ProcessLock();
  ProcessLock(const ProcessLock&) = delete;
  ProcessLock& operator=(const ProcessLock&) = delete;

  // Where the lock files live for this user (created if missing).
  static std::string directory();

 private:
  UniqueFd fd_;
};

}  // namespace graft
