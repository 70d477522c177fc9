#include <sys/auxv.h>
#include <unistd.h>

#include <cstdio>

#include "builder/compile_log.h"
#include "cli/command_line.h"

// graft runs with exactly the caller's rights: ptrace and /proc/PID/mem
// then let it change only processes the caller could debug anyway. A
// setuid or setgid graft (or one with file capabilities) would let anyone
// patch processes they cannot trace: refuse to run at all.
bool privileged_by_installation() {
  return getauxval(AT_SECURE) != 0 || getuid() != geteuid() || getgid() != getegid();
}

int main(int argc, char** argv) {
  if (privileged_by_installation()) {
    std::fprintf(stderr,
                 "graft: error: graft must not be installed setuid, setgid or with file "
                 "capabilities (uid %u, euid %u, gid %u, egid %u); run it as the user who may "
                 "trace the process\n",
                 getuid(), geteuid(), getgid(), getegid());
    return 2;
  }
  // Invoked as graft-cc / graft-c++ by a build that graft runs (--from-diff).
  if (int rc = graft::maybe_run_compiler_wrapper(argc, argv); rc >= 0) return rc;
  return graft::cli::run_command_line(argc, argv);
}
