// The audit trail of every apply, revert and refusal: one line to syslog
// (ident "graft", facility LOG_AUTHPRIV: the journal keeps it) and one JSON
// line to the policy's audit log file (default /var/log/graft/audit.log):
// who (uid, user, SUDO_USER, login uid), which patch (name, id, SHA-256,
// signer), which process (pid, executable), the result and the reason.
#pragma once
#include <sys/types.h>

#include <mutex>
#include <string>

#include "security/policy.h"

namespace graft {

struct AuditEvent {
  std::string action;  // "apply", "revert"
  std::string result;  // "ok", "failed", "refused"
  pid_t pid = 0;       // 0: refused before any process was chosen
  std::string patch_file, patch_name, patch_id, patch_sha256, signer;
  std::string reason;
};

class AuditLog {
 public:
  explicit AuditLog(const Policy& policy);
  // Never throws. A file that cannot be written is said once on stderr
  // (unless the caller is not root and the policy did not name the file: an
  // unprivileged user cannot write the system's log, and syslog has it).
  // Safe to call from several threads at once (processes patched at once):
  // lines are written whole, one at a time.
  void record(const AuditEvent& event);

 private:
  std::mutex mutex_;
  std::string path_;
  bool quiet_failure_;
  bool warned_ = false;
};

}  // namespace graft
