#include "process/tracer.h"

#include <dirent.h>
#include <signal.h>
#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/error.h"
#include "arch/x86_64/sigreturn_frame.h"
#include "arch/x86_64/syscall_restart.h"
#include "common/fault_point.h"
#include "common/file.h"
#include "process/proc_status.h"
#include "common/unique_resource.h"
#include "process/thread_alarm.h"
#include "process/tracing_thread.h"

namespace graft {

namespace {

constexpr auto kStopDeadline = std::chrono::seconds(5);
// How long run_to_syscall_at() waits for the thread to stop once its time is up.
constexpr auto kRunEndGrace = std::chrono::microseconds(500);

std::string tracer_of(pid_t pid, pid_t tid) {
  long tracer = tracer_pid(pid, tid);
  if (tracer <= 0) return {};
  std::string comm;
  try {
    comm = read_text_file(fmt::format("/proc/{}/comm", tracer));
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
  } catch (const Error&) {
  }
  return fmt::format("{} ({})", tracer, comm);
}


constexpr uint64_t kSigtrapBit = uint64_t{1} << (SIGTRAP - 1);

// Whether the kernel holds a SIGTRAP for the thread that it has not
// delivered yet (SigPnd of /proc/PID/task/TID/status).
bool sigtrap_pending(pid_t pid, pid_t tid) {
  try {
    std::string status = read_text_file(fmt::format("/proc/{}/task/{}/status", pid, tid));
    auto at = status.find("SigPnd:");
    if (at == std::string::npos) return false;
    unsigned long long mask = std::strtoull(status.c_str() + at + 7, nullptr, 16);
    return mask & kSigtrapBit;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

std::vector<pid_t> list_threads(pid_t pid) {
  std::vector<pid_t> out;
  UniqueDir d(opendir(fmt::format("/proc/{}/task", pid).c_str()));
  if (!d) return out;
  while (dirent* e = readdir(d.get())) {
    char* end;
    long tid = std::strtol(e->d_name, &end, 10);
    if (*end == 0 && tid > 0) out.push_back(static_cast<pid_t>(tid));
  }
  return out;
}

namespace {

// Whether /proc's stat file `path' shows a task that has not exited.
bool stat_shows_alive(const std::string& path) {
  std::string stat;
  try {
    stat = read_text_file(path);
  } catch (const Error&) {
    return false;
  }
  // "pid (comm) S ...": the state follows the last ')'.
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

}  // namespace

bool process_alive(pid_t pid) { return stat_shows_alive(fmt::format("/proc/{}/stat", pid)); }

bool thread_alive(pid_t pid, pid_t tid) { return stat_shows_alive(fmt::format("/proc/{}/task/{}/stat", pid, tid)); }

Tracer::Tracer(pid_t pid, bool trace_clones)
    : pid_(pid), trace_clones_(trace_clones), exit_detaches_(exit_detaches_here()) {
  if (pid <= 0) fail("invalid process id {}", pid);
  if (pid == getpid()) fail("process {} is graft itself", pid);
  if (kill(pid, 0) != 0 && errno == ESRCH) fail(ErrorCode::no_such_process, "process {} does not exist", pid);
  // Seize until the thread list is stable: threads may be created meanwhile.
  try {
    for (;;) {
      bool added = false;
      for (pid_t tid : list_threads(pid))
        if (!threads_.count(tid) && seize(tid)) added = true;
      if (!added) break;
    }
  } catch (...) {
    detach();  // the destructor does not run for a failed constructor
    throw;
  }
  if (threads_.empty()) fail(ErrorCode::no_such_process, "process {} does not exist", pid);
}

Tracer::~Tracer() {
  try {
    detach();
  } catch (...) {
  }
}

bool Tracer::seize(pid_t tid) {
  // TRACESYSGOOD: a syscall stop reports SIGTRAP|0x80, which the kernel
  // does not deliver if graft dies with the thread stopped there.
  long options = PTRACE_O_TRACESYSGOOD | (trace_clones_ ? PTRACE_O_TRACECLONE : 0);
  for (int attempt = 0;; ++attempt) {
    if (ptrace(PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void*>(options)) == 0) {
      threads_[tid] = {};
      return true;
    }
    int err = errno;
    if (err == ESRCH) return false;  // exited meanwhile
    if (err != EPERM) fail("process {}: cannot trace thread {}: {}", pid_, tid, errno_text(err));
    long tracer = tracer_pid(pid_, tid);
    if ((tracer == gettid() || tracer == getpid()) && trace_clones_) {
      // Created since and attached by PTRACE_O_TRACECLONE: its first stop
      // is on the way.
      threads_[tid] = {false, false, true};
      return true;
    }
    // A graft that has just finished (the previous command of a script)
    // may still be exiting: the kernel detaches its tracees late in the
    // tracing thread's exit. Its tracer then no longer runs: wait for it.
    if (tracer > 0 && !process_alive(static_cast<pid_t>(tracer)) && attempt < 20000) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      continue;
    }
    if (tracer > 0)
      fail("process {} is already traced by process {}; graft will not patch a process under a "
           "debugger or another graft",
           pid_, tracer_of(pid_, tid));
    // A thread on its way out answers EPERM (its mm is gone) rather than
    // ESRCH: retried briefly, and skipped once it has vanished, instead of
    // calling the whole process untraceable.
    if (!process_alive(pid_) || access(fmt::format("/proc/{}/task/{}", pid_, tid).c_str(), F_OK) != 0)
      return false;
    if (attempt >= 50) fail("process {}: no permission to trace it", pid_);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

std::vector<pid_t> Tracer::threads() const {
  std::vector<pid_t> out;
  for (const auto& [tid, t] : threads_) out.push_back(tid);
  return out;
}

void Tracer::forget(pid_t tid) {
  threads_.erase(tid);
  redirected_.erase(tid);
  deferred_masks_.erase(tid);
}

void Tracer::interrupt_stopped(pid_t tid) {
  arch::Registers regs;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) return;
  if (arch::restart_call_ended_by_stop(regs)) ptrace(PTRACE_SETREGS, tid, nullptr, &regs);
}

int Tracer::defer_signal(pid_t tid, int sig) {
  // SIGSTOP cannot be blocked; it stops the whole process anyway, and is
  // sent to it again when graft is done.
  if (sig == SIGSTOP) {
    ++held_stops_;
    return 0;
  }
  uint64_t mask = 0;
  if (ptrace(PTRACE_GETSIGMASK, tid, reinterpret_cast<void*>(sizeof mask), &mask) != 0) return 0;  // gone
  deferred_masks_.emplace(tid, mask);  // the first one is the thread's own
  uint64_t blocked = mask | (uint64_t{1} << (sig - 1));
  if (ptrace(PTRACE_SETSIGMASK, tid, reinterpret_cast<void*>(sizeof blocked), &blocked) != 0) return 0;
  return sig;
}

void Tracer::restore_signal_mask(pid_t tid) {
  auto it = deferred_masks_.find(tid);
  if (it == deferred_masks_.end()) return;
  uint64_t mask = it->second;
  deferred_masks_.erase(it);
  if (ptrace(PTRACE_SETSIGMASK, tid, reinterpret_cast<void*>(sizeof mask), &mask) != 0 && errno != ESRCH)
    fail("process {}: cannot restore the signal mask of thread {}: {}", pid_, tid, errno_text(errno));
}

int Tracer::signal_to_deliver(pid_t tid, int sig) {
  if (sig == (SIGTRAP | 0x80)) {  // a system call's stop: not a signal
    // Resumed with PTRACE_CONT by the caller, unless it keeps catching.
    if (auto it = threads_.find(tid); it != threads_.end()) it->second.syscall_armed = false;
    return 0;
  }
  if (sig == SIGTRAP && redirected_.erase(tid)) {  // graft's breakpoint, handled
    // The kernel forces an int3's SIGTRAP through: a thread that blocked
    // it has it unblocked for good (force_sig_info_to_task). A thread that
    // blocks every other signal (but those it cannot block, and glibc's
    // own two) surely blocked it too: blocked again before the thread runs.
    constexpr uint64_t kAlwaysOpen = uint64_t{1} << (SIGKILL - 1) | uint64_t{1} << (SIGSTOP - 1) |
                                     uint64_t{1} << 31 | uint64_t{1} << 32;  // SIGCANCEL, SIGSETXID
    uint64_t mask = 0;
    if (ptrace(PTRACE_GETSIGMASK, tid, reinterpret_cast<void*>(sizeof mask), &mask) == 0 &&
        (mask | kAlwaysOpen | kSigtrapBit) == ~uint64_t{0} && !(mask & kSigtrapBit)) {
      mask |= kSigtrapBit;
      ptrace(PTRACE_SETSIGMASK, tid, reinterpret_cast<void*>(sizeof mask), &mask);
    }
    return 0;
  }
  return sig;
}

void Tracer::interrupt(pid_t tid) {
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0 && errno == ESRCH) forget(tid);
}

// Waits until each thread in `tids` reports a stop (or exits). A signal
// that arrives first is delivered and the wait goes on: the interrupt,
// asked again (handle_event), stops the thread right after.
bool Tracer::wait_for_stops(std::vector<pid_t> tids, std::optional<Clock::time_point> give_up) {
  std::set<pid_t> pending;
  for (pid_t t : tids)
    if (threads_.count(t)) pending.insert(t);
  auto deadline = Clock::now() + kStopDeadline;
  while (!pending.empty()) {
    int status = 0;
    pid_t got = next_event(&status, give_up ? std::min(*give_up, deadline) : deadline, &pending);
    if (got < 0) {
      for (pid_t t : pending) forget(t);
      break;
    }
    if (got == 0) {
      if (give_up && Clock::now() > *give_up) return false;  // the interrupt stays pending
      fail_not_stopped(*pending.begin());
    }
    handle_event(got, status, &pending);
  }
  if (threads_.empty()) fail("process {} exited", pid_);
  return true;
}

pid_t Tracer::next_event(int* status, Clock::time_point until, const std::set<pid_t>* awaited) {
  for (;;) {
    // The kernel reports the tracee attached last first: busy threads that
    // keep trapping on graft's breakpoints (each handled, then trapping
    // again at the next call) would starve a thread that stopped long ago.
    // So the awaited ones are asked for by name, every time while there are
    // few of them, else after every 16 other events.
    if (awaited && !awaited->empty() && (awaited->size() <= 4 || ++others_in_a_row_ >= 16)) {
      others_in_a_row_ = 0;
      for (pid_t tid : *awaited)
        if (pid_t got = reap(tid, status, false); got > 0) return got;
    }
    pid_t got = reap(-1, status, false);
    if (got > 0) return got;
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == ECHILD) return -1;
      fail("process {}: waitpid: {}", pid_, errno_text(errno));
    }
    auto now = Clock::now();
    if (now > until) return 0;
    long left_us = std::chrono::duration_cast<std::chrono::microseconds>(until - now).count();
    got = wait_with_timeout(-1, status, std::clamp(left_us, 1L, 10000L));
    if (got > 0) return got;
  }
}

void Tracer::fail_not_stopped(pid_t tid) const {
  auto s = read_process_status(pid_);
  if (s && s->state == 'T')
    fail(ErrorCode::process_stopped,
         "process {} ({}) was stopped by job control (SIGSTOP or SIGTSTP) while graft worked on it: "
         "thread {} did not stop for graft within {} s",
         pid_, s->name, tid, kStopDeadline.count());
  // What the thread was doing, for the operator (and for graft's own bugs).
  std::string state = "gone", wchan;
  try {
    std::string stat = read_text_file(fmt::format("/proc/{}/task/{}/stat", pid_, tid));
    auto paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size()) state = std::string(1, stat[paren + 2]);
    wchan = read_text_file(fmt::format("/proc/{}/task/{}/wchan", pid_, tid));
  } catch (const Error&) {
  }
  fail("process {}: thread {} did not stop within {} s (state {}{}{})", pid_, tid, kStopDeadline.count(), state,
       wchan.empty() || wchan == "0" ? "" : ", waiting in ", wchan == "0" ? "" : wchan);
}

void Tracer::stop_each(const std::vector<pid_t>& tids, const std::function<void(pid_t)>& visit,
                       size_t window) {
  std::set<pid_t> pending;
  size_t next = 0;
  // Interrupts the next threads of `tids` until `window` are pending;
  // those already stopped are visited after the interrupts went out.
  auto refill = [&] {
    std::vector<pid_t> already;
    while (next < tids.size() && pending.size() + already.size() < window) {
      pid_t tid = tids[next++];
      auto it = threads_.find(tid);
      if (it == threads_.end()) continue;
      if (it->second.stopped) {
        already.push_back(tid);
        continue;
      }
      interrupt(tid);
      if (threads_.count(tid)) pending.insert(tid);
    }
    for (pid_t tid : already)
      if (is_stopped(tid)) visit(tid);
  };
  refill();
  while (pending.empty() && next < tids.size()) refill();  // (the window held only stopped ones)
  auto deadline = Clock::now() + kStopDeadline;
  while (!pending.empty()) {
    int status = 0;
    pid_t got = next_event(&status, deadline, &pending);
    if (got < 0) {
      for (pid_t t : pending) forget(t);
      break;
    }
    if (got == 0) fail_not_stopped(*pending.begin());
    bool waited_for = pending.count(got) != 0;
    handle_event(got, status, &pending);
    if (waited_for && !pending.count(got)) {
      // The next one is interrupted before this one is looked at.
      refill();
      if (is_stopped(got)) {
        deadline = Clock::now() + kStopDeadline;  // progress
        visit(got);
      }
    }
    while (pending.empty() && next < tids.size()) refill();
  }
  if (threads_.empty()) fail("process {} exited", pid_);
}

// A thread that executed one of graft's breakpoints: sent on to where the
// handler says, as if the breakpoint had been that jump.
bool Tracer::redirect_breakpoint(pid_t tid) {
  if (!breakpoint_) return false;
  siginfo_t info{};
  // int3 reports SI_KERNEL; a single step or a hardware breakpoint does not.
  if (ptrace(PTRACE_GETSIGINFO, tid, nullptr, &info) != 0 || info.si_code != SI_KERNEL) return false;
  arch::Registers regs;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) return false;
  auto to = breakpoint_(arch::breakpoint_site(arch::pc(regs)));
  if (!to) return false;
  arch::set_pc(regs, *to);
  if (ptrace(PTRACE_SETREGS, tid, nullptr, &regs) != 0) return false;
  ++breakpoint_hits_;
  return true;
}

void Tracer::note_clone(pid_t parent) {
  unsigned long child = 0;
  if (ptrace(PTRACE_GETEVENTMSG, parent, nullptr, &child) == 0 && child > 0 &&
      !threads_.count(static_cast<pid_t>(child)))
    threads_[static_cast<pid_t>(child)] = {false, false, true};  // its stop follows
}

void Tracer::handle_event(pid_t got, int status, std::set<pid_t>* pending) {
  int event = status >> 16;
  if (!threads_.count(got)) {
    // A thread created under trace_clones may report its first stop before
    // its parent reports the clone.
    if (trace_clones_ && WIFSTOPPED(status) && event == PTRACE_EVENT_STOP &&
        access(fmt::format("/proc/{}/task/{}", pid_, got).c_str(), F_OK) == 0)
      threads_[got] = {true, false, true};
    return;  // otherwise not ours (a child of graft)
  }
  Thread& t = threads_[got];
  if (WIFEXITED(status) || WIFSIGNALED(status)) {
    forget(got);
    if (pending) pending->erase(got);
    return;
  }
  if (!WIFSTOPPED(status)) return;
  int sig = WSTOPSIG(status);
  // Any ptrace stop clears a pending PTRACE_INTERRUPT (ptrace_stop()): a
  // thread the caller waits for is asked again after a signal's or an
  // event's stop.
  bool interrupted = pending && pending->count(got);
  if (event == PTRACE_EVENT_STOP) {
    t.stopped = true;
    t.group_stopped = sig != SIGTRAP && !t.fresh;
    if (sig == SIGTRAP && !t.fresh) interrupt_stopped(got);
    if (pending) pending->erase(got);
  } else if (event == 0 && sig == (SIGTRAP | 0x80) && t.syscall_armed && catch_syscalls_ &&
             syscall_entry_stop(got)) {
    t.syscall_armed = false;
    t.stopped = true;
    t.at_syscall_entry = true;
    if (pending) pending->erase(got);
  } else if (event == 0) {
    // Signal-delivery-stop: deliver it now, and ask again for the stop
    // this one cleared. A trap on one of graft's breakpoints is graft's
    // own (redirected by reap). A system call's stop that is not a caught
    // entry goes on: still to be caught while graft catches, else untraced.
    auto req = go_on_request(t);
    sig = signal_to_deliver(got, sig);
    t.syscall_armed = req == PTRACE_SYSCALL;
    if (ptrace(req, got, nullptr, reinterpret_cast<void*>(static_cast<long>(sig))) != 0 &&
        errno == ESRCH) {
      forget(got);
      if (pending) pending->erase(got);
    } else if (interrupted) {
      interrupt(got);
    }
  } else {
    if (event == PTRACE_EVENT_CLONE) note_clone(got);
    // An event stop (a clone, above all: a thread creating threads) clears
    // the interrupt as a signal's stop does; without asking again, the
    // thread went on into a futex wait and never stopped for graft.
    auto req = go_on_request(t);
    t.syscall_armed = req == PTRACE_SYSCALL;
    if (ptrace(req, got, nullptr, nullptr) == 0 && interrupted) interrupt(got);
  }
  if (pending && !threads_.count(got)) pending->erase(got);  // gone while asked again
}

bool Tracer::trap_pending(pid_t tid) const { return sigtrap_pending(pid_, tid); }

// waitpid(`which', __WALL), but a thread stopped to be given the SIGTRAP of
// one of graft's int3s is sent on to the breakpoint's destination first,
// while the kernel still holds the signal for it. The wait that reports a
// signal-delivery-stop discards the signal (the tracer decides what the
// thread gets): were graft killed between that wait and the redirection,
// the thread would resume just past the int3, inside a half-written jump.
// Redirected before the wait, it resumes at the destination, with the
// signal gone or with it going to graft's SIGTRAP handler, which lets a
// thread already at a destination go on (arch/x86_64/trap_handler.h).
pid_t Tracer::reap(pid_t which, int* status, bool block) {
  siginfo_t si{};
  // __WNOTHREAD: only this thread's tracees. A tracee belongs to the thread
  // that attached it, but a wait of any thread of graft sees it otherwise:
  // with processes patched at once, each by a thread of its own, one thread
  // would take another's events.
  int flags = WSTOPPED | WEXITED | __WALL | __WNOTHREAD | WNOWAIT | (block ? 0 : WNOHANG);
  if (waitid(which < 0 ? P_ALL : P_PID, which < 0 ? 0 : static_cast<id_t>(which), &si, flags) != 0)
    return -1;
  if (si.si_pid == 0) return 0;
  // si_status is the whole stop code: SIGTRAP alone is a signal-delivery-stop.
  if (si.si_code == CLD_TRAPPED && si.si_status == SIGTRAP && threads_.count(si.si_pid) &&
      redirect_breakpoint(si.si_pid))
    redirected_.insert(si.si_pid);
  pid_t got;
  do got = waitpid(si.si_pid, status, __WALL | __WNOTHREAD | WNOHANG);
  while (got < 0 && errno == EINTR);
  return got;
}

// A blocking reap() that gives up after `timeout_us` (< 0: never): the
// thread's own timer interrupts it with SIGALRM (process/thread_alarm.h). A
// step normally completes in microseconds; polling would cost a timer slice
// (~60 us) per step.
pid_t Tracer::wait_with_timeout(pid_t tid, int* status, long timeout_us) {
  if (timeout_us < 0) return reap(tid, status, true);
  // Repeated every millisecond or more: a SIGALRM that lands before the
  // wait has started (graft preempted in between) is followed by another
  // one, instead of leaving a wait that nothing ends when no thread has
  // anything to report. (Not at the timeout's own period: a 1 us timer
  // repeated would bury graft in signals.)
  if (timeout_us == 0 || !arm_thread_alarm(timeout_us, std::max(timeout_us, 1000L)))
    return reap(tid, status, false);
  pid_t got = reap(tid, status, true);
  int err = errno;
  disarm_thread_alarm();
  if (got < 0 && err == EINTR) return reap(tid, status, false);  // timed out
  errno = err;
  return got;
}

void Tracer::settle_breakpoints() {
  auto deadline = Clock::now() + std::chrono::seconds(2);
  for (;;) {
    // The kernel dequeues a trap and puts the thread in its stop under one
    // lock: a trap not pending when its thread's SigPnd is read is reported
    // to the waitpid() calls that follow, unless graft has waited for it
    // already.
    std::vector<pid_t> pending;
    for (const auto& [tid, t] : threads_)
      if (sigtrap_pending(pid_, tid)) pending.push_back(tid);
    int status = 0;
    for (pid_t got; (got = reap(-1, &status, false)) > 0;) handle_event(got, status, nullptr);
    if (pending.empty()) return;
    for (pid_t tid : pending)
      if (is_stopped(tid)) resume(tid);
    if (Clock::now() > deadline)
      fail("process {}: thread {} still has a breakpoint trap pending after 2 s", pid_, pending.front());
    poll_events(1000);
  }
}

std::vector<pid_t> Tracer::new_threads() {
  std::vector<pid_t> out;
  for (auto& [tid, t] : threads_)
    if (t.fresh && t.stopped) {
      t.fresh = false;
      out.push_back(tid);
    }
  return out;
}

void Tracer::stop_all() {
  std::vector<pid_t> interrupted;
  for (;;) {
    for (pid_t tid : list_threads(pid_))
      if (!threads_.count(tid)) seize(tid);
    std::vector<pid_t> now;
    for (auto& [tid, t] : threads_)
      if (!t.stopped) now.push_back(tid);
    if (now.empty()) break;
    for (pid_t tid : now) interrupt(tid);
    wait_for_stops(now);
  }
}

bool Tracer::try_stop(pid_t tid, Clock::time_point give_up) {
  auto it = threads_.find(tid);
  if (it == threads_.end()) fail("process {}: thread {} is not traced", pid_, tid);
  if (it->second.stopped) return true;
  interrupt(tid);
  bool stopped = wait_for_stops({tid}, give_up);
  if (!threads_.count(tid)) fail("process {}: thread {} exited", pid_, tid);
  return stopped;
}

void Tracer::stop(pid_t tid) {
  auto it = threads_.find(tid);
  if (it == threads_.end()) fail("process {}: thread {} is not traced", pid_, tid);
  if (it->second.stopped) return;
  interrupt(tid);
  wait_for_stops({tid});
  if (!threads_.count(tid)) fail("process {}: thread {} exited", pid_, tid);
}

void Tracer::resume(pid_t tid) {
  auto it = threads_.find(tid);
  if (it == threads_.end() || !it->second.stopped) return;
  // A job-control stop is the user's: PTRACE_LISTEN keeps it in place.
  restart(tid, it->second.group_stopped ? PTRACE_LISTEN : PTRACE_CONT);
}

void Tracer::resume_until_syscall(pid_t tid) {
  auto it = threads_.find(tid);
  if (it == threads_.end() || !it->second.stopped) return;
  if (it->second.group_stopped || !catch_syscalls_) return resume(tid);
  restart(tid, PTRACE_SYSCALL);
}

void Tracer::restart(pid_t tid, __ptrace_request req) {
  Thread& t = threads_.at(tid);
  if (ptrace(req, tid, nullptr, nullptr) != 0 && errno == ESRCH) {
    forget(tid);
    return;
  }
  t.stopped = false;
  t.at_syscall_entry = false;
  t.syscall_armed = req == PTRACE_SYSCALL;
}

void Tracer::catch_syscalls(bool on) {
  catch_syscalls_ = on;
  if (on) return;
  for (pid_t tid : threads())
    if (at_syscall_entry(tid)) resume(tid);
}

// Entry, not exit: a thread resumed with PTRACE_SYSCALL from outside any
// call stops first at an entry, but one interrupted inside a call (whose
// restart the kernel arranged) could report that call's exit.
bool Tracer::syscall_entry_stop(pid_t tid) const {
  __ptrace_syscall_info info{};
  long n = ptrace(PTRACE_GET_SYSCALL_INFO, tid, reinterpret_cast<void*>(sizeof info), &info);
  return n > 0 && info.op == PTRACE_SYSCALL_INFO_ENTRY;
}

void Tracer::resume_all() {
  for (pid_t tid : threads()) resume(tid);
}

pid_t Tracer::stopped_thread() {
  auto main = threads_.find(pid_);
  if (is_usable_stopped(pid_)) return pid_;
  for (const auto& [tid, t] : threads_)
    if (is_usable_stopped(tid)) return tid;
  pid_t tid = main != threads_.end() && !main->second.stopped ? pid_ : 0;
  for (auto it = threads_.begin(); !tid && it != threads_.end(); ++it)
    if (!it->second.stopped) tid = it->first;
  if (tid) {
    stop(tid);
    return tid;
  }
  fail("process {}: every thread is held by graft at a system call's entry", pid_);
}

arch::Registers Tracer::registers(pid_t tid) const {
  arch::Registers regs;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0)
    fail("process {}: cannot read the registers of thread {}: {}", pid_, tid, errno_text(errno));
  return regs;
}

void Tracer::set_registers(pid_t tid, const arch::Registers& regs) {
  if (ptrace(PTRACE_SETREGS, tid, nullptr, &regs) != 0)
    fail("process {}: cannot set the registers of thread {}: {}", pid_, tid, errno_text(errno));
}

void Tracer::poll_events(long timeout_us) {
  int status = 0;
  pid_t got = wait_with_timeout(-1, &status, timeout_us);
  while (got > 0) {
    handle_event(got, status, nullptr);
    got = reap(-1, &status, false);  // whatever else is already there
  }
  if (threads_.empty() || !process_alive(pid_)) fail("process {} exited", pid_);
}

bool Tracer::wait_thread(pid_t tid, int* status, long timeout_us) {
  // Waited for in slices: if the process is killed meanwhile, the kernel
  // reports a traced group leader only after graft has reaped the other
  // threads, so one unbounded waitpid() on it would never return.
  constexpr long kSliceUs = 100000;
  for (long waited = 0;; waited += kSliceUs) {
    long slice = timeout_us < 0 ? kSliceUs : std::min(kSliceUs, timeout_us - waited);
    pid_t got = wait_with_timeout(tid, status, std::max(slice, 0L));
    if (got > 0 && (WIFEXITED(*status) || WIFSIGNALED(*status))) got = -1;
    if (got < 0) {
      forget(tid);
      if (!process_alive(pid_)) fail("process {} exited", pid_);
      fail("process {}: thread {} exited", pid_, tid);
    }
    if (got > 0) return true;
    if (!process_alive(pid_)) {
      forget(tid);
      fail("process {} exited", pid_);
    }
    if (timeout_us >= 0 && waited + slice >= timeout_us) return false;
  }
}

arch::Registers Tracer::run_syscall(pid_t tid, const arch::Registers& regs) {
  set_registers(tid, regs);
  constexpr int kSyscallStop = SIGTRAP | 0x80;
  int resume_with = 0;
  try {
    for (int stops = 0; stops < 2;) {
      if (ptrace(PTRACE_SYSCALL, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(resume_with))) != 0)
        fail("process {}: cannot run a system call on thread {}: {}", pid_, tid, errno_text(errno));
      resume_with = 0;
      int status = 0;
      wait_thread(tid, &status, -1);
      int sig = WSTOPSIG(status);
      if ((status >> 16) == 0 && sig == kSyscallStop) {
        if (++stops == 1) fault_point("remote-syscall");  // entry, then exit
      } else if ((status >> 16) == 0 && (sig = signal_to_deliver(tid, sig)) != 0) {
        resume_with = defer_signal(tid, sig);  // arrived first
      }
    }
  } catch (...) {
    try {
      restore_signal_mask(tid);
    } catch (...) {
    }
    throw;
  }
  // The thread's own signals, now unblocked, reach it when it resumes.
  restore_signal_mask(tid);
  return registers(tid);
}

uint64_t Tracer::signal_mask(pid_t tid) const {
  uint64_t mask = 0;
  if (ptrace(PTRACE_GETSIGMASK, tid, reinterpret_cast<void*>(sizeof mask), &mask) != 0)
    fail("process {}: cannot read the signal mask of thread {}: {}", pid_, tid, errno_text(errno));
  return mask;
}

Bytes Tracer::extended_state(pid_t tid) const {
  Bytes buf(64 * 1024);
  iovec iov{buf.data(), buf.size()};
  if (ptrace(PTRACE_GETREGSET, tid, reinterpret_cast<void*>(NT_X86_XSTATE), &iov) != 0)
    fail("process {}: cannot read the FPU state of thread {}: {}", pid_, tid, errno_text(errno));
  buf.resize(iov.iov_len);
  return buf;
}

void Tracer::set_extended_state(pid_t tid, const Bytes& xstate) {
  Bytes copy = xstate;
  iovec iov{copy.data(), copy.size()};
  if (ptrace(PTRACE_SETREGSET, tid, reinterpret_cast<void*>(NT_X86_XSTATE), &iov) != 0)
    fail("process {}: cannot restore the FPU state of thread {}: {}", pid_, tid, errno_text(errno));
}

Tracer::RunOutcome Tracer::run_until_fault(pid_t tid, long timeout_us, uint64_t sigreturn_pc) {
  auto it = threads_.find(tid);
  if (it == threads_.end() || !it->second.stopped) fail("process {}: thread {} is not stopped", pid_, tid);
  auto is_fault = [](int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP ||
           sig == SIGABRT || sig == SIGSYS;
  };
  auto cont = [&](pid_t t, int sig) {
    if (ptrace(PTRACE_CONT, t, nullptr, reinterpret_cast<void*>(static_cast<long>(sig))) != 0 &&
        errno == ESRCH)
      forget(t);
  };
  // The thread itself runs under PTRACE_SYSCALL when a sigreturn stop is
  // awaited; any other is resumed plainly.
  auto cont_tid = [&](int sig) {
    auto req = sigreturn_pc ? PTRACE_SYSCALL : PTRACE_CONT;
    if (ptrace(req, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig))) != 0 && errno == ESRCH)
      forget(tid);
  };
  it->second.stopped = false;
  cont_tid(0);
  // The thread's own signals, deferred meanwhile, reach it once it is
  // back and resumed.
  struct MaskGuard {
    Tracer* tracer;
    pid_t tid;
    ~MaskGuard() {
      try {
        tracer->restore_signal_mask(tid);
      } catch (...) {
      }
    }
  } mask_guard{this, tid};
  if (sigreturn_pc) fault_point("call-running");
  RunOutcome out;
  bool interrupted = false;
  auto deadline = Clock::now() + std::chrono::microseconds(timeout_us);
  for (;;) {
    int status = 0;
    // In slices: see single_step().
    pid_t got = wait_with_timeout(-1, &status, 100000);
    if (got < 0 && errno == ECHILD) fail("process {} exited", pid_);
    if (got <= 0) {
      if (!process_alive(pid_)) fail("process {} exited", pid_);
      if (!interrupted && Clock::now() > deadline) {
        out.timed_out = true;
        interrupted = true;
        interrupt(tid);
      }
      continue;
    }
    if (!threads_.count(got)) continue;
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      forget(got);
      if (got == tid) fail("process {}: thread {} exited", pid_, tid);
      continue;
    }
    if (!WIFSTOPPED(status)) continue;
    int event = status >> 16, sig = WSTOPSIG(status);
    if (got != tid) {
      // Another thread (running meanwhile): its signal goes through.
      if (event == 0) {
        cont(got, signal_to_deliver(got, sig));
      } else if (event == PTRACE_EVENT_STOP) {
        threads_[got].stopped = true;  // e.g. a job-control stop; resumed later
        threads_[got].group_stopped = sig != SIGTRAP;
        if (sig == SIGTRAP) interrupt_stopped(got);
      } else {
        cont(got, 0);
      }
      continue;
    }
    if (event == PTRACE_EVENT_STOP) {
      threads_[tid].stopped = true;
      threads_[tid].group_stopped = false;
      if (interrupted) return out;
      cont_tid(0);  // a stray stop (job control): keep going until the deadline
      threads_[tid].stopped = false;
      continue;
    }
    if (event != 0) {
      cont_tid(0);
      if (interrupted && threads_.count(tid)) interrupt(tid);  // cleared by this stop
      continue;
    }
    if (sig == (SIGTRAP | 0x80)) {  // a syscall stop (PTRACE_O_TRACESYSGOOD)
      if (out.returned) {           // rt_sigreturn's exit: the thread is back
        threads_[tid].stopped = true;
        return out;
      }
      arch::Registers r = registers(tid);
      if (static_cast<long>(r.orig_rax) == arch::kRtSigreturnNr && r.rip == sigreturn_pc) {
        out.returned = true;
        out.value = r.rdi;
        // graft restores the thread itself (remote_call): rt_sigreturn would
        // also cancel a restart_syscall restart, turning a sleep the thread
        // was in into EINTR. The frame is only for when graft is gone.
        r.orig_rax = SYS_getpid;
        set_registers(tid, r);
      }
      cont_tid(0);
      if (interrupted && threads_.count(tid)) interrupt(tid);  // cleared by this stop
      continue;
    }
    if (is_fault(sig)) {
      // (After a timeout's interrupt, its stop comes when the thread next
      // runs; the Tracer treats it as any stop.)
      ptrace(PTRACE_GETSIGINFO, tid, nullptr, &out.info);
      out.signal = sig;
      threads_[tid].stopped = true;  // signal-delivery-stop; not delivered
      return out;
    }
    cont_tid(defer_signal(tid, sig));
    if (interrupted && threads_.count(tid)) interrupt(tid);  // cleared by this stop
  }
}

Tracer::RunEnd Tracer::run_to_syscall_at(pid_t tid, uint64_t pc, Clock::time_point give_up) {
  auto it = threads_.find(tid);
  if (it == threads_.end() || !it->second.stopped || it->second.group_stopped)
    fail("process {}: thread {} is not stopped", pid_, tid);
  constexpr int kSyscallStop = SIGTRAP | 0x80;
  int deliver = 0;
  for (;;) {
    Thread& t = threads_.at(tid);
    if (ptrace(PTRACE_SYSCALL, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(deliver))) != 0) {
      forget(tid);
      fail("process {}: thread {} exited", pid_, tid);
    }
    t.stopped = false;
    t.syscall_armed = true;
    deliver = 0;
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(give_up - Clock::now()).count();
    int status = 0;
    if (left <= 0 || !wait_thread(tid, &status, left)) break;
    int event = status >> 16, sig = WSTOPSIG(status);
    if (event == PTRACE_EVENT_STOP) {  // job control, or a stray interrupt
      t.stopped = true;
      t.syscall_armed = false;
      t.group_stopped = sig != SIGTRAP;
      if (sig == SIGTRAP) interrupt_stopped(tid);
      return RunEnd::stopped;
    }
    if (event == PTRACE_EVENT_CLONE) note_clone(tid);
    if (event != 0) continue;
    if (sig == kSyscallStop) {
      if (syscall_entry_stop(tid) && registers(tid).rip == pc) {
        t.stopped = true;
        t.syscall_armed = false;
        t.at_syscall_entry = true;
        return RunEnd::reached;
      }
      continue;
    }
    deliver = signal_to_deliver(tid, sig);
  }
  // Out of time: stopped where it is if it stops at once (a system call's
  // stop on the way goes on plainly, see handle_event()). A thread that
  // waits for a CPU is not waited for: the caller holds every other one.
  if (!threads_.count(tid)) fail("process {}: thread {} exited", pid_, tid);
  return try_stop(tid, Clock::now() + kRunEndGrace) ? RunEnd::stopped : RunEnd::running;
}

void Tracer::skip_syscall(pid_t tid, arch::Registers regs) {
  auto it = threads_.find(tid);
  if (it == threads_.end() || !it->second.at_syscall_entry)
    fail("process {}: thread {} is not at a system call's entry", pid_, tid);
  regs.orig_rax = static_cast<unsigned long long>(-1);  // no call, and no restart
  set_registers(tid, regs);
  if (ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr) != 0) {
    forget(tid);
    fail("process {}: thread {} exited", pid_, tid);
  }
  Thread& t = threads_.at(tid);
  t.stopped = false;
  t.at_syscall_entry = false;
  t.syscall_armed = true;
  // The call's exit comes first: a signal is delivered after it.
  int status = 0;
  if (wait_thread(tid, &status, 1000000) && (status >> 16) == 0 && WSTOPSIG(status) == (SIGTRAP | 0x80)) {
    t.stopped = true;
    t.syscall_armed = false;
    return;
  }
  fail("process {}: thread {} did not leave its system call as expected", pid_, tid);
}

void Tracer::resend_stop_signals() {
  if (held_stops_ > 0) kill(pid_, SIGSTOP);
  held_stops_ = 0;
}

// On a tracing thread (tracing_thread.h), the thread's exit detaches every
// thread at once and none is stopped for it: only what the exit would not
// do is done here. Elsewhere, one thread at a time, never all at once: a
// per-thread transition ends without a global stop, and each thread is
// stopped only for as long as its own detach takes. A thread created
// meanwhile by one still traced is reported (traced from its birth) and
// detached in a later round.
void Tracer::detach() {
  // A borrowing cut short by an error: the thread's mask goes back first.
  while (!deferred_masks_.empty()) {
    try {
      restore_signal_mask(deferred_masks_.begin()->first);
    } catch (const Error&) {
    }
  }
  if (exit_detaches_) {
    exit_detaches_ = false;
    mark_exit_detach_used();
    try {
      // The exit delivers a signal a thread stopped for, but would not
      // redirect a trap on graft's breakpoint.
      if (breakpoint_) settle_breakpoints();
    } catch (const Error&) {
      // Gone, or a trap that never came: graft's handler, if installed, has it.
    }
    threads_.clear();
    redirected_.clear();
    resend_stop_signals();
    return;
  }
  try {
    while (!threads_.empty()) detach_thread(threads_.begin()->first);
  } catch (const Error&) {
    // The process is gone: nothing to protect.
    for (const auto& [tid, t] : threads_) ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    threads_.clear();
  }
  resend_stop_signals();
}

void Tracer::detach_thread(pid_t tid) {
  try {
    stop(tid);  // PTRACE_DETACH needs a stopped thread; detaching resumes it
    // A thread that executed one of graft's breakpoints and was then
    // stopped by an interrupt still has the SIGTRAP pending: detached, it
    // would die of it. It runs, with no interrupt pending, until the
    // signal is delivered (and redirected).
    auto deadline = Clock::now() + std::chrono::seconds(2);
    while (breakpoint_ && threads_.count(tid) && sigtrap_pending(pid_, tid) &&
           Clock::now() < deadline) {
      resume(tid);
      int status = 0;
      pid_t got = wait_with_timeout(tid, &status, 100000);
      if (got > 0) handle_event(got, status, nullptr);
      if (threads_.count(tid)) stop(tid);
    }
  } catch (const Error&) {
    if (!process_alive(pid_)) throw;
    forget(tid);  // it exited
    return;
  }
  if (!threads_.count(tid)) return;
  ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
  forget(tid);
}

}  // namespace graft
