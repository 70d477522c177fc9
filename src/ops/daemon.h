// graft daemon: keeps every process on this host patched as the store says.
//
//   start: sync every process (repairing what a killed graft left first);
//   exec of a new program (ExecWatch): patch it if it maps a target (the
//     programs started together, `jobs` at once, as sync does); a
//     library target is mapped by the dynamic loader after the exec, so a
//     process that maps none yet is looked at again a few times during its
//     first second;
//   every rescan interval: sync everything again (libraries loaded later
//     with dlopen, processes the watch missed);
//   SIGHUP or a change in the store directory (inotify): reload the store
//     and sync;
//   SIGTERM / SIGINT: exit between two applies.
//
// A process a patch cannot be applied to is logged once and left alone (no
// retry until the store is reloaded); `graft status` shows it and why.
// Every apply is in the audit log; progress goes to stderr (the journal).
#pragma once
#include <string>
#include <vector>

#include "loader/operations.h"

namespace graft::ops {

struct DaemonOptions {
  std::string store;
  std::vector<std::string> tags;
  std::string policy;       // "" as load_policy()
  std::string config_file;  // for the log
  bool enabled = true;      // the configuration's "enable"
  std::string kernel_cmdline = "/proc/cmdline";
  double rescan_interval_s = 30;
  OperationOptions operation;
  bool force_polling = false;
  unsigned jobs = 0;       // processes worked on at once (0: process_batch.h's default)
  std::string prometheus;  // textfile to keep current, "" none
};

// Returns the exit status: 0 after SIGTERM or when disabled.
int run_daemon(const DaemonOptions& options);

}  // namespace graft::ops
