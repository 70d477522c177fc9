#include "loader/callbacks.h"

#include <sys/syscall.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "arch/x86_64/sigreturn_frame.h"
#include "common/error.h"
#include "common/file.h"
#include "loader/code_slack.h"

namespace graft {

namespace {

// A thread blocked in a system call other than futex (an event loop's
// epoll_wait, a read, a sleep) is, in all likelihood, at a point where it
// holds none of the program's locks: a callback that takes one (malloc
// does) will not wait for the very thread it runs on. A running thread may
// be anywhere, and one in futex is waiting for a lock, maybe holding others.
bool blocked_outside_locks(pid_t pid, pid_t tid) {
  try {
    std::string s = read_text_file(fmt::format("/proc/{}/task/{}/syscall", pid, tid));
    char* end = nullptr;
    long nr = std::strtol(s.c_str(), &end, 10);
    return end != s.c_str() && nr >= 0 && nr != SYS_futex;
  } catch (const Error&) {
    return false;
  }
}

// The main thread if it is blocked that way, else another that is, else
// the main thread (or any, when it is gone). One thread when it can be:
// what a call allocates (libgcc's unwinder does) then comes from that
// thread's malloc arena, not from a new arena for each thread used. A main
// thread graft has just resumed is still on its way back into the call it
// was blocked in: it is given a moment to get there.
pid_t callback_thread(const Tracer& tracer) {
  pid_t pid = tracer.pid();
  if (tracer.is_traced(pid))
    for (int look = 0; look < 20; ++look) {
      if (blocked_outside_locks(pid, pid)) return pid;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  for (pid_t tid : tracer.threads())
    if (tid != pid && blocked_outside_locks(pid, tid)) return tid;
  return tracer.is_traced(pid) ? pid : tracer.threads().front();
}

}  // namespace

std::string CallbackRun::describe(Callback::Kind kind, const PatchRecord& patch) const {
  return fmt::format("{} callback `{}' of patch {} {}", callback_kind_name(kind), function,
                     patch.label(), result.describe());
}

RemoteCallResult call_for_patch(TargetSession& session, const PatchRecord& patch, RemoteAddress function,
                                const uint64_t (&args)[6], double timeout_s) {
  Tracer& tracer = session.tracer();
  const ProcessMemory& memory = session.memory();
  pid_t tid = callback_thread(tracer);
  bool stopped_here = !tracer.is_stopped(tid);
  if (stopped_here) tracer.stop(tid);
  // The kill-safe return, if the thunk is where graft put it.
  RemoteAddress thunk;
  if (auto at = call_return_thunk_address(patch)) {
    Bytes b(sizeof arch::kCallReturnThunk);
    if (memory.try_read({*at}, b.data(), b.size()) &&
        std::equal(b.begin(), b.end(), arch::kCallReturnThunk))
      thunk = {*at};
  }
  RemoteCallResult r =
      remote_call(tracer, memory, tid, function, {patch.region_start}, timeout_s, args, thunk);
  if (stopped_here) tracer.resume(tid);
  return r;
}

std::optional<CallbackRun> run_callback(TargetSession& session, const PatchRecord& patch, Callback::Kind kind,
                                        double timeout_s) {
  const CallbackRecord* c = patch.callback(kind);
  if (!c) return std::nullopt;
  return CallbackRun{c->function, call_for_patch(session, patch, {c->address}, {}, timeout_s)};
}

}  // namespace graft
