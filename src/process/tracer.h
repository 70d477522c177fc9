// Attaches to every thread of a process with PTRACE_SEIZE and stops and
// resumes them, one or all. Seizing does not stop anything; only
// stop()/stop_all() do. Detaching (in the destructor, or when graft dies,
// by the kernel) leaves every thread running as before.
#pragma once
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "arch/x86_64/registers.h"
#include "common/clock.h"
#include "common/hash.h"  // Bytes

namespace graft {

class Tracer {
 public:
  // With `trace_clones`, threads the process creates are traced from their
  // first instruction (PTRACE_O_TRACECLONE): each starts stopped and waits
  // in new_threads() until graft resumes it.
  explicit Tracer(pid_t pid, bool trace_clones = false);  // throws if the process cannot be traced
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  pid_t pid() const { return pid_; }
  std::vector<pid_t> threads() const;  // traced and alive
  size_t thread_count() const { return threads_.size(); }
  bool is_traced(pid_t tid) const { return threads_.count(tid) != 0; }
  // Stopped by graft (not by job control), so its registers may be borrowed.
  // (Not one held at a system call's entry: its registers are that call's.)
  bool is_usable_stopped(pid_t tid) const {
    auto it = threads_.find(tid);
    return it != threads_.end() && it->second.stopped && !it->second.group_stopped &&
           !it->second.at_syscall_entry;
  }
  bool is_stopped(pid_t tid) const {
    auto it = threads_.find(tid);
    return it != threads_.end() && it->second.stopped;
  }

  // Stops every thread, including those created meanwhile. Threads that
  // exit on the way are forgotten. Throws if the whole process is gone.
  void stop_all();
  void resume_all();
  void stop(pid_t tid);
  // stop(), but gives up at `give_up`: the thread then counts as running,
  // with its interrupt pending. False in that case.
  bool try_stop(pid_t tid, Clock::time_point give_up);
  void resume(pid_t tid);

  // Catching threads at their next system call (the lazy model's way to
  // meet a thread that blocks too briefly to be seen blocked). While
  // catching is on, a thread resumed with resume_until_syscall() stops at
  // the entry of its next system call, before the kernel runs it, and
  // stays stopped there (at_syscall_entry) until resume(). With catching
  // off, such a stop resumes at once. Turning it off resumes the threads
  // held at an entry. A thread graft dies with is detached by the kernel
  // and runs its call.
  void catch_syscalls(bool on);
  void resume_until_syscall(pid_t tid);
  bool at_syscall_entry(pid_t tid) const {
    auto it = threads_.find(tid);
    return it != threads_.end() && it->second.stopped && it->second.at_syscall_entry;
  }
  // Resumed by resume_until_syscall() and not stopped since.
  bool waits_for_syscall(pid_t tid) const {
    auto it = threads_.find(tid);
    return it != threads_.end() && it->second.syscall_armed;
  }
  // Interrupts every thread of `tids` at once and calls `visit(tid)` for
  // each as soon as it has stopped (it stays stopped until the visitor or
  // the caller resumes it); threads that exit on the way are skipped. For
  // running threads, each of which stops only when it next gets a CPU:
  // their waits overlap instead of adding up. Throws if no thread stops
  // within 5 s (the visitor's own exceptions pass through; threads still
  // on the way then stop later, and a later stop() or detach absorbs it).
  // With a `window`, at most that many threads are on their way to a stop
  // or stopped and not yet visited, taken in the order of `tids`: for
  // threads waiting in the kernel, which stop at once, so that each is
  // held about as long as graft looks at it while the next one's stop
  // overlaps that look.
  void stop_each(const std::vector<pid_t>& tids, const std::function<void(pid_t)>& visit,
                 size_t window = SIZE_MAX);
  // Any thread that is stopped (the main thread if possible), for running
  // system calls; stops one if none is.
  pid_t stopped_thread();

  arch::Registers registers(pid_t tid) const;
  void set_registers(pid_t tid, const arch::Registers& regs);
  // Runs the system call the registers describe (pc at a `syscall`) on a
  // stopped thread, through syscall-entry and syscall-exit stops (no trap
  // flag: if graft dies meanwhile, the thread is not killed by a SIGTRAP).
  // Returns the registers at the exit; the thread stays stopped there.
  // Signals that arrive meanwhile are deferred (see defer_signal()).
  arch::Registers run_syscall(pid_t tid, const arch::Registers& regs);
  uint64_t signal_mask(pid_t tid) const;
  Bytes extended_state(pid_t tid) const;  // the XSAVE image (NT_X86_XSTATE)

  // Lets a stopped thread run until it faults or is sent a fatal-looking
  // signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGSYS), or
  // until `timeout_us` passes (then it is interrupted). Other signals, to
  // this thread, are deferred (see defer_signal()); those of other threads
  // are delivered as usual. The fault is never delivered.
  // The thread is stopped again on return. Throws if it exits.
  // With `sigreturn_pc`, the thread runs under PTRACE_SYSCALL and the run
  // also ends when it enters rt_sigreturn at that pc (the call-return thunk,
  // see arch/x86_64/sigreturn_frame.h): `returned`, with rdi as `value`.
  // The rt_sigreturn is turned into a getpid: the caller restores the
  // thread, which is left stopped at that call's exit.
  struct RunOutcome {
    bool returned = false;
    uint64_t value = 0;
    bool timed_out = false;
    int signal = 0;
    siginfo_t info{};
  };
  RunOutcome run_until_fault(pid_t tid, long timeout_us, uint64_t sigreturn_pc = 0);
  void set_extended_state(pid_t tid, const Bytes& xstate);

  // Lets a stopped thread run alone (the others stay as they are) under
  // PTRACE_SYSCALL until it enters a system call with its pc at `pc`
  // (`reached`: it stays stopped at that entry). Its other system calls go
  // on, the signals it gets are delivered. A job-control stop ends the run
  // (`stopped`). At `give_up` it is interrupted: `stopped` where it is, or,
  // if it does not stop at once (waiting for a CPU), `running`, with the
  // interrupt pending and no longer caught at system calls. Throws if it
  // exits.
  enum class RunEnd { reached, stopped, running };
  RunEnd run_to_syscall_at(pid_t tid, uint64_t pc, Clock::time_point give_up);
  // A thread stopped at a system call's entry by run_to_syscall_at(): the
  // call is skipped, and the thread left stopped (at the call's exit) with
  // `regs`.
  void skip_syscall(pid_t tid, arch::Registers regs);

  // Leaves every thread running and untraced. On a thread of
  // run_tracing_thread(), the thread's exit does it for all at once
  // (process/tracing_thread.h): graft only hands over the signals it held
  // back. Elsewhere, one thread at a time, each stopped for its detach.
  void detach();

  // Where a thread that executed one of graft's breakpoints (at `site`)
  // must continue; nullopt if the breakpoint is not graft's. Consulted on
  // every SIGTRAP while graft waits for stops, whatever it waits for.
  using BreakpointHandler = std::function<std::optional<uint64_t>(uint64_t site)>;
  void on_breakpoint(BreakpointHandler handler) { breakpoint_ = std::move(handler); }
  // Handles events (breakpoints, new threads, exits, signals) for up to
  // `timeout_us`, returning early after the first one.
  void poll_events(long timeout_us);
  // Threads created since the last call; they are stopped, not yet run.
  std::vector<pid_t> new_threads();
  // Whether the thread has executed a breakpoint whose SIGTRAP the kernel
  // has not delivered yet (it reports a stop requested meanwhile first).
  bool trap_pending(pid_t tid) const;
  // Once no int3 of graft's is left in the code: handles every breakpoint
  // trap still on its way (a thread executed an int3 before it went, and
  // its SIGTRAP is pending, or reported and not yet waited for), resuming
  // a thread graft holds stopped with one pending so that it is delivered.
  // After it, no thread has one: graft's SIGTRAP handler may go, and graft
  // may die without a thread dying of a trap. Throws if one is still
  // pending after 2 s.
  void settle_breakpoints();
  // Breakpoint traps redirected since the tracer started.
  long breakpoint_hits() const { return breakpoint_hits_; }

 private:
  struct Thread {
    bool stopped = false;
    bool group_stopped = false;  // stopped by job control, not by us
    bool fresh = false;          // created under trace_clones, not yet handed out
    bool syscall_armed = false;     // resumed with PTRACE_SYSCALL
    bool at_syscall_entry = false;  // stopped there, caught
  };
  // One waitpid() result; erases `got` from `pending` once it has stopped.
  void handle_event(pid_t got, int status, std::set<pid_t>* pending);
  // At `parent`'s PTRACE_EVENT_CLONE stop: the new thread, traced from its
  // birth, whose first stop follows.
  void note_clone(pid_t parent);
  // waitpid() that sends a thread trapped on graft's breakpoint on before
  // the wait discards its signal; 0 if `block' is false and nothing is there.
  pid_t reap(pid_t which, int* status, bool block);
  pid_t wait_with_timeout(pid_t tid, int* status, long timeout_us);
  // The signal a signal-delivery-stop should deliver: none for a trap on
  // graft's breakpoint that reap() redirected.
  int signal_to_deliver(pid_t tid, int sig);
  bool redirect_breakpoint(pid_t tid);
  bool seize(pid_t tid);
  void interrupt(pid_t tid);
  // False if `give_up` passed first (the interrupts stay pending; a later
  // stop absorbs them).
  bool wait_for_stops(std::vector<pid_t> tids,
                      std::optional<Clock::time_point> give_up = std::nullopt);
  // The next stop of `tid`, waited for in slices while the process lives.
  // Returns false if `timeout_us` (>= 0) passed first.
  bool wait_thread(pid_t tid, int* status, long timeout_us);
  void forget(pid_t tid);
  // Stops one thread, lets a pending breakpoint trap of graft's be handled,
  // detaches it (or forgets it if it exited on the way).
  void detach_thread(pid_t tid);
  // The next waitpid() status of any child, waited for (blocking, in
  // slices of at most 10 ms) until `until`: its pid, 0 if `until` passed
  // first, -1 if graft has no child left. Blocking sees a stop at once; a
  // sleep between polls would cost the timer slack (~50 us) per stop.
  // `awaited': the threads the caller waits for, whose events come first.
  pid_t next_event(int* status, Clock::time_point until, const std::set<pid_t>* awaited = nullptr);
  [[noreturn]] void fail_not_stopped(pid_t tid) const;
  // A thread stopped by graft's interrupt: a wait the stop alone ended
  // with EINTR is made to restart (arch/x86_64/syscall_restart.h).
  void interrupt_stopped(pid_t tid);
  bool syscall_entry_stop(pid_t tid) const;
  // Resumes a stopped thread with `req` (PTRACE_CONT, _LISTEN, _SYSCALL),
  // or forgets it if it is gone.
  void restart(pid_t tid, __ptrace_request req);
  // How a thread stopped for an event or a signal goes on: to be caught at
  // its next system call if it was and graft still catches, else plainly.
  __ptrace_request go_on_request(const Thread& t) const {
    return t.syscall_armed && catch_syscalls_ ? PTRACE_SYSCALL : PTRACE_CONT;
  }
  // A signal that reached a thread while graft borrows it (for a system
  // call or a function): it cannot be delivered to graft's registers, and
  // graft cannot hold it either (a signal re-sent later carries graft's
  // siginfo, not the sender's). So the thread blocks it until the borrowing
  // ends, and the signal-delivery-stop resumes with it: the kernel, seeing
  // it blocked, queues it again, siginfo, timer overrun and target (thread
  // or process) unchanged (ptrace_signal()). Another thread may take a
  // process-wide one at once; this thread takes its own once its mask is
  // back. Returns the signal to resume with.
  int defer_signal(pid_t tid, int sig);
  // Puts back the mask of a thread defer_signal() changed.
  void restore_signal_mask(pid_t tid);
  void resend_stop_signals();

  pid_t pid_;
  std::map<pid_t, Thread> threads_;
  std::map<pid_t, uint64_t> deferred_masks_;  // the thread's own mask, by defer_signal()
  int held_stops_ = 0;  // SIGSTOPs (unblockable) that reached a borrowed thread
  bool trace_clones_ = false;
  bool catch_syscalls_ = false;
  bool exit_detaches_ = false;  // see detach()
  BreakpointHandler breakpoint_;
  long breakpoint_hits_ = 0;
  std::set<pid_t> redirected_;  // by reap(), their stop not handled yet
  int others_in_a_row_ = 0;     // next_event(): events not of an awaited thread
};

// The tids listed in /proc/PID/task.
std::vector<pid_t> list_threads(pid_t pid);
// False once the process has exited (zombie included).
bool process_alive(pid_t pid);
// False once the thread has exited (zombie included) or is not listed.
bool thread_alive(pid_t pid, pid_t tid);


}  // namespace graft
