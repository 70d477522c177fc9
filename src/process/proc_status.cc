#include "process/proc_status.h"

#include <fmt/format.h>

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/file.h"

namespace graft {

long tracer_pid(pid_t pid, pid_t tid) {
  try {
    std::string status = read_text_file(fmt::format("/proc/{}/task/{}/status", pid, tid));
    auto at = status.find("TracerPid:");
    return at == std::string::npos ? 0 : std::strtol(status.c_str() + at + 10, nullptr, 10);
  } catch (const Error&) {
    return 0;
  }
}

std::optional<uint64_t> thread_cpu_ns(pid_t pid, pid_t tid) {
  try {
    std::string stat = read_text_file(fmt::format("/proc/{}/task/{}/schedstat", pid, tid));
    char* end = nullptr;
    unsigned long long ns = std::strtoull(stat.c_str(), &end, 10);
    if (end == stat.c_str()) return std::nullopt;
    return ns;
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace graft

namespace graft {

namespace {

// In /proc/PID/stat's flags.
constexpr unsigned long kPfExiting = 0x00000004;
constexpr unsigned long kPfKthread = 0x00200000;

std::string status_field(const std::string& status, const char* field) {
  std::string key = std::string("\n") + field + ":";
  auto at = ("\n" + status).find(key);
  if (at == std::string::npos) return "";
  at += key.size() - 1;  // in `status' (no leading newline)
  auto end = status.find('\n', at);
  std::string v = status.substr(at, end == std::string::npos ? std::string::npos : end - at);
  v.erase(0, v.find_first_not_of(" \t"));
  return v;
}

}  // namespace

std::optional<ProcessStatus> read_process_status(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::string status, stat;
  try {
    status = read_text_file(fmt::format("/proc/{}/status", pid));
    stat = read_text_file(fmt::format("/proc/{}/stat", pid));
  } catch (const Error&) {
    return std::nullopt;
  }
  ProcessStatus s;
  s.name = status_field(status, "Name");
  std::string state = status_field(status, "State");
  if (!state.empty()) s.state = state[0];
  std::string uids = status_field(status, "Uid");  // real, effective, saved, fs
  char* end = nullptr;
  s.uid = static_cast<uid_t>(std::strtoul(uids.c_str(), &end, 10));
  s.euid = static_cast<uid_t>(std::strtoul(end, nullptr, 10));
  s.seccomp = std::atoi(status_field(status, "Seccomp").c_str());
  // "pid (comm) state ppid pgrp session tty_nr tpgid flags ...".
  auto paren = stat.rfind(')');
  if (paren != std::string::npos) {
    const char* p = stat.c_str() + paren + 1;
    for (int field = 0; field < 7 && *p; ++field) {
      while (*p == ' ') ++p;
      if (field == 6) {
        unsigned long flags = std::strtoul(p, nullptr, 10);
        s.kernel_thread = flags & kPfKthread;
        s.exiting = flags & kPfExiting;
      }
      while (*p && *p != ' ') ++p;
    }
  }
  return s;
}

bool process_exiting(pid_t pid) {
  auto s = read_process_status(pid);
  return !s || s->state == 'Z' || s->state == 'X' || s->exiting;
}

void check_process_changeable(pid_t pid) {
  if (pid <= 0) fail(ErrorCode::usage, "invalid process id {}", pid);
  if (pid == getpid()) fail(ErrorCode::usage, "process {} is graft itself", pid);
  if (pid == 1)
    fail(ErrorCode::init_process,
         "process 1 is the init process of this system or container: graft does not patch it "
         "(if it crashed, everything under it would go)");
  auto s = read_process_status(pid);
  if (!s) fail(ErrorCode::no_such_process, "process {} does not exist", pid);
  if (s->kernel_thread)
    fail(ErrorCode::kernel_thread, "process {} ({}) is a kernel thread: graft patches user-space processes only",
         pid, s->name);
  if (s->state == 'Z' || s->state == 'X')
    fail(ErrorCode::zombie, "process {} ({}) is a zombie: it has exited and waits for its parent to reap it",
         pid, s->name);
  if (s->state == 'T')
    fail(ErrorCode::process_stopped,
         "process {} ({}) is stopped by job control (SIGSTOP or SIGTSTP): its threads cannot run "
         "graft's system calls; resume it with `kill -CONT {}' and try again",
         pid, s->name, pid);
  uid_t me = geteuid();
  if (me != 0 && (s->uid != me || s->euid != me))
    fail(ErrorCode::permission_denied,
         "process {} ({}) belongs to uid {} and graft runs as uid {}: permission denied (patch it "
         "as root or as its user)",
         pid, s->name, s->euid, me);
}

void fail_remote_syscall(pid_t pid, const char* what, int err, bool adds_exec) {
  auto s = read_process_status(pid);
  if (s && s->seccomp != 0 && (err == EPERM || err == EACCES || err == ENOSYS))
    fail(ErrorCode::seccomp,
         "process {}: {} failed in the process ({}): it runs under a seccomp filter (Seccomp: {} in "
         "/proc/{}/status) that forbids a system call graft needs",
         pid, what, errno_text(err), s->seccomp, pid);
  if (adds_exec && err == EACCES)
    fail(ErrorCode::write_execute_denied,
         "process {}: {} failed in the process ({}): the process may not make new memory executable "
         "(memory-deny-write-execute: PR_SET_MDWE, systemd's MemoryDenyWriteExecute=, or a security "
         "module's policy), which graft needs for the patch's code",
         pid, what, errno_text(err));
  fail("process {}: {} failed in the process: {}", pid, what, errno_text(err));
}

}  // namespace graft
