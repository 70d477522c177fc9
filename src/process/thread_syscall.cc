#include "process/thread_syscall.h"

#include <sched.h>
#include <sys/syscall.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file.h"
#include "process/memory.h"
#include "process/tracer.h"

namespace graft {

std::optional<BlockedSyscall> blocked_syscall(pid_t pid, pid_t tid) {
  std::string text;
  try {
    text = read_text_file(fmt::format("/proc/{}/task/{}/syscall", pid, tid));
  } catch (const Error&) {
    return std::nullopt;
  }
  std::istringstream in(text);
  std::vector<std::string> f;
  for (std::string w; in >> w;) f.push_back(w);
  if (f.empty() || f[0] == "running") return std::nullopt;
  // "NR a0 a1 a2 a3 a4 a5 SP PC", or "-1 SP PC" outside a system call.
  if (f.size() != 9 && f.size() != 3) return std::nullopt;
  BlockedSyscall b;
  char* end = nullptr;
  b.nr = std::strtol(f[0].c_str(), &end, 10);
  if (*end) return std::nullopt;
  if (f.size() == 9)
    for (int i = 0; i < 6; ++i) {
      b.args[i] = std::strtoull(f[1 + i].c_str(), &end, 16);
      if (*end) return std::nullopt;
    }
  b.sp = std::strtoull(f[f.size() - 2].c_str(), &end, 16);
  if (*end) return std::nullopt;
  b.pc = std::strtoull(f.back().c_str(), &end, 16);
  if (*end) return std::nullopt;
  return b;
}

namespace {

std::optional<pid_t> thread_in_vfork(pid_t pid) {
  for (pid_t tid : list_threads(pid))
    if (auto b = blocked_syscall(pid, tid); b && in_vfork(pid, *b)) return tid;
  return std::nullopt;
}

}  // namespace

void wait_out_vfork(pid_t pid, double timeout_s) {
  auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (auto tid = thread_in_vfork(pid)) {
    if (std::chrono::steady_clock::now() > give_up)
      fail("process {}: {} (waited {:.1f} s)", pid, vfork_holder(pid, *tid), timeout_s);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool in_vfork(pid_t pid, const BlockedSyscall& b) {
#ifdef SYS_vfork
  if (b.nr == SYS_vfork) return true;
#endif
  if (b.nr == SYS_clone) return (b.args[0] & CLONE_VFORK) != 0;
  if (b.nr == SYS_clone3) {
    // The flags are the first word of its struct clone_args, in the
    // process's memory.
    uint64_t flags = 0;
    if (!ProcessMemory(pid).try_read({b.args[0]}, &flags, sizeof flags)) return false;
    return (flags & CLONE_VFORK) != 0;
  }
  return false;
}

std::string vfork_holder(pid_t pid, pid_t tid) {
  std::string children;
  try {
    children = read_text_file(fmt::format("/proc/{}/task/{}/children", pid, tid));
  } catch (const Error&) {
  }
  while (!children.empty() && (children.back() == ' ' || children.back() == '\n')) children.pop_back();
  return fmt::format("thread {} is in vfork(): no stop reaches it until its child{} execs or exits", tid,
                     children.empty() ? "" : " (pid " + children + ")");
}

}  // namespace graft
