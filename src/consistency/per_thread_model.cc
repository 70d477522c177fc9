#include "consistency/per_thread_model.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "arch/x86_64/gate.h"
#include "arch/x86_64/return_stub.h"
#include "common/interrupt.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault_point.h"
#include "consistency/return_traps.h"
#include "consistency/trap_guard.h"
#include "process/proc_status.h"
#include "process/remote_syscalls.h"
#include "process/thread_syscall.h"

namespace graft {

void wait_quiescent_users(Tracer& tracer, const ProcessMemory& memory, uint64_t users, double timeout_s) {
  if (!users) return;
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  for (;;) {
    uint32_t n = 0;
    if (!memory.try_read({users}, &n, sizeof n))
      fail("process {}: libgraft-rt's graft_rt_transition_users at {:#x} is unreadable", memory.pid(), users);
    if (n == 0) return;
    if (Clock::now() > deadline)
      fail("process {}: {} thread(s) still inside graft_quiescent() after {:.1f} s", memory.pid(), n, timeout_s);
    tracer.poll_events(200);  // a signalled thread waits for graft
  }
}

namespace {

// Puts back the return address of one stopped thread whose slot graft
// pointed at `stub', unless the thread is in the stub (it has returned
// through it) or has returned otherwise (see put_back_return_address).
bool restore_return(const ProcessMemory& memory, const arch::Registers& regs, uint64_t stub, uint64_t slot,
                    uint64_t original) {
  uint64_t pc = arch::pc(regs);
  if (pc >= stub && pc - stub < arch::kReturnStubSize) return false;
  return put_back_return_address(memory, regs, stub, slot, original);
}

}  // namespace

size_t restore_return_addresses(Tracer& tracer, const ProcessMemory& memory, uint64_t stubs, uint32_t count) {
  size_t restored = 0;
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t at = stubs + uint64_t(i) * arch::kReturnStubSize;
    Bytes code(arch::kReturnStubSize);
    if (!memory.try_read({at}, code.data(), code.size())) continue;
    auto stub = arch::parse_return_stub(code, at);
    if (!stub) continue;
    pid_t tid = static_cast<pid_t>(stub->tid);
    if (!tracer.is_traced(tid)) continue;  // exited: its stack is gone
    bool was_stopped = tracer.is_stopped(tid);
    try {
      tracer.stop(tid);
      if (restore_return(memory, tracer.registers(tid), at, stub->slot, stub->original)) ++restored;
    } catch (const Error&) {
      if (!process_alive(tracer.pid())) throw;
    }
    if (!was_stopped) tracer.resume(tid);
  }
  return restored;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

namespace {

double us_since(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

class Transition {
 public:
  Transition(Tracer& tracer, const ProcessMemory& memory, const TransitionPlan& plan,
             const TransitionOptions& options, TransitionResult& result)
      : tracer_(tracer),
        memory_(memory),
        plan_(plan),
        options_(options),
        result_(result),
        area_(memory, plan.area, getpid()),
        return_traps_(tracer.pid(), plan.return_stubs_unwind) {
    returns_enabled_ = plan.return_stub_count > 0 && !return_stubs_disabled();
    if (returns_enabled_) skip_used_stubs();
  }

  // Apply: old -> new. Revert (of a completed transition): new -> old.
  void run(Universe from, Universe to) {
    from_ = from;
    target_ = to;
    // The plan outlives this object: the tracer still needs the handler
    // when it detaches.
    // A trap on an exit stub's int3: the thread has returned from its
    // outermost frame in the code it leaves. It goes on in the stub, and
    // the next pass moves it (stub_hits_).
    tracer_.on_breakpoint([&gates = plan_.gate_of_site, stubs = plan_.return_stubs,
                           count = plan_.return_stub_count,
                           hits = stub_hits_](uint64_t site) -> std::optional<uint64_t> {
      auto it = gates.find(site);
      if (it != gates.end()) return it->second;
      if (site >= stubs && site - stubs < uint64_t(count) * arch::kReturnStubSize &&
          (site - stubs) % arch::kReturnStubSize == 0) {
        hits->push_back({site, Clock::now()});
        return site + 1;
      }
      return std::nullopt;
    });
    // Where a thread without an entry is (the header's goal): `to' if every
    // thread's pointer is read first and listed in `from'; `from' otherwise,
    // and each thread gets its entry when graft first stops it, to move it
    // (one stop per thread instead of two). Threads must be listed first
    // when they may move without graft stopping them: in graft_quiescent(),
    // or with --force.
    if (plan_.quiescent_area || options_.force) {
      read_thread_pointers();
      area_.initialize(initial_, from, to);
    } else {
      for (pid_t tid : tracer_.threads()) threads_[tid] = {};
      area_.initialize({}, from, from);
    }
    adopt_new_threads();
    // A revert is marked before anything changes: a graft that dies from
    // here on leaves a revert that the next one completes (recovery.h).
    if (to == Universe::Old) options_.set_state(TransitionPhase::unapplying);
    auto start = Clock::now();
    try {
      guard_traps(true);
      // From the first int3 on, gates are reachable: failures must undo.
      try {
        write_live(plan_.to_gates, to == Universe::New);
      } catch (const Error&) {
        // The entries are as before (write_live undid its int3s), but a
        // thread that trapped meanwhile may still be in a gate or an old
        // path (the region goes if this was an apply).
        if (process_alive(tracer_.pid())) {
          if (to == Universe::New) drain({plan_.gates});
          guard_traps(false);
        }
        throw;
      }
    } catch (const Error&) {
      if (to == Universe::Old && process_alive(tracer_.pid())) options_.set_state(TransitionPhase::applied);
      throw;
    }
    gates_live_ = true;
    if (to == Universe::New) options_.set_state(TransitionPhase::applying);
    arm_quiescent(true);
    try {
      std::string why = move_all(to, busy_for(to), options_.kind, options_.force);
      if (why.empty()) {
        arm_quiescent(false);
        finish(to);
        result_.completed = true;
      } else {
        result_.reason = why;
        turn_around();
      }
    } catch (const TransitionStuck&) {
      throw;
    } catch (const Error& e) {
      if (!process_alive(tracer_.pid())) throw;
      try {
        restore_returns();
      } catch (const Error&) {
      }
      // An unexpected failure with gates live: the process keeps working,
      // but graft cannot say the patch is in or out.
      throw TransitionStuck(fmt::format("{}; the transition is left in progress (every thread runs "
                                        "the code of its universe)",
                                        e.what()));
    }
    result_.transition_ms = ms_since(start);
    if (last_return_) result_.return_to_end_ms = ms_since(*last_return_);
    result_.breakpoint_hits = tracer_.breakpoint_hits();
  }

 private:
  struct Thread {
    uint64_t tp = 0;
    // Why it could not move when last checked, and its CPU time then.
    std::string held_by;
    std::optional<uint64_t> cpu_ns_at_check;
    std::optional<Clock::time_point> catch_asked;  // lazy: see catch_at_syscall()
  };

  // A thread that has not run since graft found it busy is where it was:
  // stopping it again would only take its next turn on a CPU (the stop is
  // all it would do with it), and with more busy threads than cores the
  // same thread would be found at the same pc again and again. Checked
  // again once it has used this much CPU time (more than a stop costs it).
  static constexpr uint64_t kRanSinceCheckNs = 100000;
  static constexpr double kPoliteMs = 20;
  // While threads wait out kPoliteMs, they are looked at again this often
  // (a look is a read of /proc, no stop): one that blocks is taken then,
  // not at the next back-off of the busy threads, which by the end of the
  // polite period is up to 16 ms away.
  static constexpr auto kPoliteLookUs = std::chrono::microseconds(1000);
  // Lazy: a running thread not seen blocked within kCatchAfterMs is caught
  // at its next system call; asked again after kCatchAgainMs if a signal
  // or a failed check let it go.
  static constexpr double kCatchAfterMs = 50;
  static constexpr double kCatchAgainMs = 1000;
  static constexpr const char* kLazyRunning =
      "running (lazy: moves at a system call, or in graft_quiescent())";
  static constexpr const char* kLazyCatching =
      "running, no system call since graft asked to catch its next one (lazy: moves at a system call, "
      "or in graft_quiescent())";

  // Stops one thread and reads its registers; nullopt if it exited on the
  // way (threads come and go during a transition).
  std::optional<arch::Registers> stop_thread(pid_t tid) {
    try {
      tracer_.stop(tid);
      return tracer_.registers(tid);
    } catch (const Error&) {
      if (!process_alive(tracer_.pid())) throw;
      if (tracer_.is_traced(tid)) tracer_.resume(tid);  // ESRCH: forgets it
      if (tracer_.is_traced(tid) && list_has(tid)) throw;
      return std::nullopt;
    }
  }

  // The registers of a thread Tracer::stop_each stopped; nullopt if it
  // exited meanwhile (then resumed, which forgets it).
  std::optional<arch::Registers> handed_over(pid_t tid) {
    try {
      return tracer_.registers(tid);
    } catch (const Error&) {
      if (!process_alive(tracer_.pid())) throw;
      tracer_.resume(tid);
      return std::nullopt;
    }
  }

  bool list_has(pid_t tid) {
    for (pid_t t : list_threads(tracer_.pid()))
      if (t == tid) return true;
    return false;
  }

  // Lets threads move themselves in graft_quiescent() (libgraft-rt), only
  // while the gates are live: a thread moved before would run old code
  // marked new.
  // Disarmed, no thread may be left inside the area: the region may go next.
  void arm_quiescent(bool on) {
    if (!plan_.quiescent_area) return;
    uint8_t armed = on ? 1 : 0;
    if (on) {
      uint64_t at = plan_.area.address;
      memory_.write_value({plan_.quiescent_area}, at);
    }
    memory_.write({plan_.quiescent_armed}, {&armed, 1});
    if (!on) wait_quiescent_users(tracer_, memory_, plan_.quiescent_users, options_.timeout_s);
  }

  // One stop per thread, before anything is written: its thread pointer.
  void read_thread_pointers() {
    for (pid_t tid : tracer_.threads()) {
      auto t0 = Clock::now();
      auto regs = stop_thread(tid);
      if (!regs) continue;
      uint64_t tp = 0;
      try {
        tp = checked_thread_pointer(tid, *regs);
      } catch (...) {
        tracer_.resume(tid);
        throw;
      }
      tracer_.resume(tid);
      result_.stalls_us.push_back(us_since(t0));
      claim_thread_pointer(tid, tp);
      initial_.push_back(tp);
    }
  }

  // Records a thread's pointer; two live threads may not share one. glibc
  // reuses an exited thread's stack and TCB for the next thread it creates:
  // an entry whose thread has exited (its exit not yet reaped by the
  // tracer) gives way. The new thread inherits its universe entry, which
  // is safe: it starts with no replaced code on its stack.
  void claim_thread_pointer(pid_t tid, uint64_t tp) {
    for (auto it = threads_.begin(); it != threads_.end();) {
      auto& [other, t] = *it;
      if (other == tid || t.tp != tp || !tracer_.is_traced(other)) {
        ++it;
        continue;
      }
      if (!thread_alive(tracer_.pid(), other)) {
        it = threads_.erase(it);
        continue;
      }
      fail("process {}: threads {} and {} share the thread pointer {:#x}; the per-thread models "
           "need one per thread",
           tracer_.pid(), other, tid, tp);
    }
    threads_[tid].tp = tp;
  }

  // The gates find a thread by %fs:0, which glibc and musl set to the TCB
  // address itself; refuse a thread for which that does not hold.
  uint64_t checked_thread_pointer(pid_t tid, const arch::Registers& regs) {
    uint64_t tp = arch::thread_pointer(regs);
    uint64_t self = 0;
    if (tp == 0 || (tp & 7) != 0 || !memory_.try_read({tp}, &self, sizeof self) || self != tp)
      fail("process {}: thread {} has no thread pointer the gates can read (fs base {:#x}); use "
           "--model stop",
           tracer_.pid(), tid, tp);
    return tp;
  }

  // Threads created since the last call (stopped before their first
  // instruction). Before the gates are live they run the code the entries
  // lead to: `from'. After,
  // they start in the universe the transition goes to, even if an exited
  // thread left an entry under the same thread pointer.
  void adopt_new_threads() {
    release_exited_threads();  // first: their slots may serve the new ones
    std::vector<pid_t> fresh = std::move(unborn_);
    unborn_.clear();
    for (pid_t tid : tracer_.new_threads()) fresh.push_back(tid);
    for (pid_t tid : fresh) {
      std::optional<arch::Registers> regs;
      try {
        regs = tracer_.registers(tid);
      } catch (const Error&) {
        tracer_.resume(tid);  // killed before it ran
        continue;
      }
      try {
        uint64_t tp = checked_thread_pointer(tid, *regs);
        // With the table full (threads born faster than graft sees the old
        // ones exit), a new thread waits at its first instruction for a
        // slot, or for the transition's end: its creation is delayed, never
        // refused.
        if (gates_live_ && target_ != area_.goal() && !area_.contains(tp) && !area_.has_room_for_new_thread()) {
          unborn_.push_back(tid);
          continue;
        }
        threads_[tid] = {};
        claim_thread_pointer(tid, tp);
        if (!gates_live_)
          area_.put_universe(tp, from_);
        else
          area_.put_universe(tp, target_);
      } catch (const Error&) {
        tracer_.resume(tid);
        throw;
      }
      tracer_.resume(tid);
    }
  }

  // Frees the entries of threads that have exited, unless a live thread
  // took the pointer over (glibc hands a joined thread's TCB to the next
  // one). A new thread cannot have taken it unseen: it waits, stopped,
  // for adopt_new_threads().
  void release_exited_threads() {
    std::set<uint64_t> live;
    for (const auto& [tid, t] : threads_)
      if (t.tp && tracer_.is_traced(tid)) live.insert(t.tp);
    for (auto it = threads_.begin(); it != threads_.end();) {
      // (One whose return an exit stub holds keeps its entry, which the
      // stub's code names, until the stub is retired.)
      bool stub = std::any_of(rewrites_.begin(), rewrites_.end(),
                              [&](const auto& r) { return r.second.tid == it->first; });
      if (stub || tracer_.is_traced(it->first) || thread_alive(tracer_.pid(), it->first)) {
        ++it;
        continue;
      }
      if (it->second.tp && !live.count(it->second.tp)) area_.remove(it->second.tp);
      it = threads_.erase(it);
    }
  }

  // The thread that runs graft's system calls in the target: the main
  // thread if it is there.
  pid_t runner_thread() const {
    return tracer_.is_traced(tracer_.pid()) ? tracer_.pid() : tracer_.threads().front();
  }

  // Makes every core that runs the target execute a serializing instruction
  // (membarrier SYNC_CORE, run inside the target, which must register for it
  // once); without it, stops and resumes every running thread, which the
  // kernel's return to user space serializes.
  void sync_cores() {
    auto t0 = Clock::now();
    pid_t runner = runner_thread();
    tracer_.stop(runner);
    if (membarrier_ == 0) {
      RemoteSyscalls sys(tracer_, memory_, plan_.maps);
      long mask = sys.call(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
      membarrier_ = -1;
      if (mask > 0 && (mask & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) &&
          sys.call(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0)
        membarrier_ = 1;
    }
    if (membarrier_ == 1) {
      long rc;
      {
        RemoteSyscalls sys(tracer_, memory_, plan_.maps);
        rc = sys.call(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0);
      }
      tracer_.resume(runner);
      result_.stalls_us.push_back(us_since(t0));
      if (rc == 0) return;
      membarrier_ = -1;
    }
    tracer_.resume(runner);
    for (pid_t tid : tracer_.threads()) {
      if (blocked_syscall(tracer_.pid(), tid)) continue;
      auto t1 = Clock::now();
      if (stop_thread(tid)) tracer_.resume(tid);
      result_.stalls_us.push_back(us_since(t1));
    }
  }

  // graft's SIGTRAP handler stands in for graft while an int3 of graft's may
  // be in running code: installed before the first, removed after the
  // last. Were graft killed in between, a thread that runs into one goes
  // to the gate instead of dying of SIGTRAP.
  void guard_traps(bool on) {
    if (!plan_.trap_handler) return;
    // No trap of an int3 that is gone may arrive without the handler.
    if (!on) tracer_.settle_breakpoints();
    pid_t runner = runner_thread();
    auto t0 = Clock::now();
    tracer_.stop(runner);
    {
      RemoteSyscalls sys(tracer_, memory_, plan_.maps);
      if (on)
        install_trap_handler(sys, memory_, plan_.trap_handler);
      else
        remove_trap_handler(sys, memory_, plan_.trap_handler);
    }
    tracer_.resume(runner);
    result_.stalls_us.push_back(us_since(t0));
  }

  bool at_interior(uint64_t pc) const { return plan_.interior.count(pc) != 0; }

  // With int3 at every site, no thread can start the displaced instructions
  // any more; one that already started them may be between two of them,
  // where the tail of the jump is about to go. Such a thread continues from
  // the same instruction in the old path (the relocated copy), which ends
  // with the jump back past the displaced bytes. Threads blocked in a
  // system call are not stopped: their pc is known.
  void clear_interior() {
    std::vector<pid_t> running;
    for (pid_t tid : tracer_.threads()) {
      auto b = blocked_syscall(tracer_.pid(), tid);
      if (!b || b->nr < 0 || at_interior(b->pc)) running.push_back(tid);
    }
    // Stopped together, each looked at as it stops (see move_pass).
    tracer_.stop_each(running, [&](pid_t tid) {
      auto t0 = Clock::now();
      auto regs = handed_over(tid);
      if (!regs) return;
      auto it = plan_.interior.find(arch::pc(*regs));
      // A thread that executed the int3 has its pc one past the site too,
      // with the SIGTRAP still to come: the trap sends it to the gate.
      if (it != plan_.interior.end() && !tracer_.trap_pending(tid)) {
        arch::set_pc(*regs, it->second);
        tracer_.set_registers(tid, *regs);
      }
      tracer_.resume(tid);
      result_.stalls_us.push_back(us_since(t0));
    });
  }

  // Writes the sites in running code as the kernel's text_poke_bp does: a
  // thread never executes a half-written jump.
  void write_live(const std::vector<SiteWrite>& writes, bool displaces) {
    for (const auto& w : writes) {
      if (memory_.read(w.site, w.expected.size()) != w.expected)
        fail("process {}: the entry of `{}' at {} changed since graft read it (another patcher?)",
             tracer_.pid(), w.function, w.site);
    }
    const uint8_t bp = arch::kBreakpoint;
    size_t done = 0;
    try {
      for (; done < writes.size(); ++done) memory_.write(writes[done].site, {&bp, 1});
      sync_cores();
      fault_point("entry-int3");
      if (displaces && !plan_.interior.empty()) clear_interior();
    } catch (...) {
      // Nothing but int3 is written yet: put the first bytes back.
      for (size_t i = 0; i < done; ++i) memory_.write(writes[i].site, {writes[i].expected.data(), 1});
      throw;
    }
    for (const auto& w : writes)
      memory_.write(w.site + 1, {w.bytes.data() + 1, w.bytes.size() - 1});
    sync_cores();
    fault_point("entry-tail");
    for (const auto& w : writes) memory_.write(w.site, {w.bytes.data(), 1});
    sync_cores();
  }

  // Moves every thread to `goal`; returns "" when all are there, or why not
  // (timeout, revert request).
  std::string move_all(Universe goal, const std::vector<BusyRange>& busy, Model kind, bool force) {
    StackCheck check(tracer_.pid(), memory_, busy);
    std::vector<uint64_t> sites;
    for (const auto& e : plan_.entries) sites.push_back(e.site);
    check.allow_at_entries(sites);
    for (auto& [tid, t] : threads_) t.held_by.clear();
    abort_.clear();
    struct CatchSyscalls {
      Tracer& tracer;
      ~CatchSyscalls() {
        try {
          tracer.catch_syscalls(false);
        } catch (...) {
        }
      }
    } catching{tracer_};
    tracer_.catch_syscalls(kind == Model::lazy);
    auto start = Clock::now();
    move_start_ = start;
    auto backoff = std::chrono::microseconds(1000);
    // The back-off is for threads found busy: the next pass that stops them
    // again. Passes in between only look at threads that were running.
    auto next_full = start;
    bool full = true;
    bool reported = false;
    double last_progress = -1;
    size_t last_moved = SIZE_MAX;
    for (;;) {
      adopt_new_threads();
      if (from_ == Universe::Old && goal == Universe::New && area_.revert_requested()) {
        result_.revert_requested = true;
        return "reverted at the request of `graft revert'";
      }
      ++result_.passes;
      std::vector<TransitionArea::Pending> pending;
      Pass pass{goal, check, kind, pending};
      pass.only_unchecked = !full;
      move_pass(pass, force);
      if (!abort_.empty()) return abort_;
      size_t total = pass.total, moved = pass.moved;
      result_.threads = std::max(result_.threads, total);
      area_.report(static_cast<uint32_t>(total), static_cast<uint32_t>(moved), pending);
      double elapsed = ms_since(start) / 1000;
      if (pending.empty()) return "";
      if (elapsed > 0.2 && (moved != last_moved || elapsed - last_progress >= 1)) {
        if (options_.progress)
          options_.progress(fmt::format("{}: {}: {}/{} threads moved", options_.label,
                                        goal == Universe::New ? "applying" : "reverting", moved, total));
        last_progress = elapsed;
        last_moved = moved;
      }
      if (!reported && elapsed >= options_.report_after_s) {
        reported = true;
        for (const auto& p : pending)
          if (options_.progress)
            options_.progress(fmt::format("{}: after {:.1f} s, thread {} is still pending: {}", options_.label,
                                          elapsed, p.tid, p.holding));
      }
      // Interrupted, the forward move stops here and turns back (the move
      // back is not interruptible: it restores what was there).
      if (int sig = interrupt_signal(); sig && goal != from_)
        return fmt::format("interrupted by {} with {} of {} threads still pending", signal_name(sig),
                           pending.size(), total);
      if (elapsed > options_.timeout_s)
        return fmt::format("{} of {} threads still pending after {:.1f} s; first: thread {}: {}",
                           pending.size(), total, elapsed, pending[0].tid, pending[0].holding);
      if (full) {
        next_full = Clock::now() + backoff;
        backoff = std::min(backoff * 2, std::chrono::microseconds(20000));
      }
      // Threads waiting out the polite period are looked at again soon, and
      // once more the moment it ends.
      auto until = next_full;
      if (pass.polite) {
        auto polite_end = move_start_ + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double, std::milli>(kPoliteMs));
        until = std::min({until, Clock::now() + kPoliteLookUs, std::max(polite_end, Clock::now())});
      }
      auto wait = std::chrono::duration_cast<std::chrono::microseconds>(until - Clock::now());
      tracer_.poll_events(std::max<long>(wait.count(), 0));
      full = Clock::now() >= next_full;
    }
  }

  // One pass over the threads not yet in `goal`: those that cannot move
  // now are listed in `pending` with the reason.
  struct Pass {
    Universe goal;
    StackCheck& check;
    Model kind;
    std::vector<TransitionArea::Pending>& pending;
    size_t total = 0, moved = 0;
    // In: only threads not found busy yet are looked at (a pass between
    // two of the busy threads' back-off). Out: threads left running, still
    // in their polite period.
    bool only_unchecked = false;
    size_t polite = 0;
  };

  void move_pass(Pass& p, bool force) {
    area_.refresh();  // threads may have moved themselves
    // A thread that trapped on an entry while it was written waits in a
    // stop for graft: sent on first, it is seen running, not waiting in
    // the kernel (stopping it then would take its next turn on a CPU, one
    // such thread after the other).
    tracer_.poll_events(0);
    take_stub_hits();
    std::vector<pid_t> waiting, running;  // to stop: one at a time, all together
    std::vector<pid_t> to_catch;          // lazy: to catch at their next system call
    for (pid_t tid : tracer_.threads()) {
      auto it = threads_.find(tid);
      if (it == threads_.end()) continue;  // created, not adopted yet: stopped
      ++p.total;
      Thread& thread = it->second;
      uint64_t tp = thread.tp;
      // A thread graft has not stopped yet has no entry: it is in the goal.
      if (tp ? area_.universe_of(tp) == p.goal : area_.goal() == p.goal) {
        ++p.moved;
        continue;
      }
      if (force) {
        area_.set_universe(tp, p.goal);
        ++result_.forced;
        ++p.moved;
        continue;
      }
      // Found busy when last checked: stopped again at a pass of the
      // back-off only (unless a stop graft asked for is still holding it).
      if (p.only_unchecked && !thread.held_by.empty() && !tracer_.is_stopped(tid)) {
        p.pending.push_back({tid, thread.held_by});
        continue;
      }
      if (tracer_.at_syscall_entry(tid)) {  // caught (lazy): stopped there
        waiting.push_back(tid);
        continue;
      }
      auto blocked = blocked_syscall(tracer_.pid(), tid);
      // Its user state is frozen until its child execs or exits; a stop
      // would wait for that.
      if (blocked && in_vfork(tracer_.pid(), *blocked)) {
        p.pending.push_back({tid, vfork_holder(tracer_.pid(), tid)});
        continue;
      }
      // As livepatch checks only tasks that are not running, hybrid first
      // takes the threads that wait in the kernel (their stop costs them
      // nothing: they were not running); a running thread is stopped only
      // once it has had kPoliteMs to block.
      if (p.kind == Model::hybrid && !blocked && ms_since(move_start_) < kPoliteMs) {
        p.pending.push_back({tid, "running (stopped to be checked if it does not block soon)"});
        ++p.polite;
        continue;
      }
      if (p.kind == Model::lazy && (!blocked || blocked->nr < 0)) {
        if (ms_since(move_start_) >= kCatchAfterMs && !tracer_.waits_for_syscall(tid) &&
            (!thread.catch_asked || ms_since(*thread.catch_asked) >= kCatchAgainMs)) {
          to_catch.push_back(tid);
          continue;
        }
        p.pending.push_back({tid, tracer_.waits_for_syscall(tid) ? kLazyCatching : kLazyRunning});
        continue;
      }
      // (One left stopped, by a stop graft asked for and stopped waiting
      // for, has not run because of graft: looked at again, and resumed.)
      if (!thread.held_by.empty() && thread.cpu_ns_at_check && !tracer_.is_stopped(tid)) {
        auto cpu_ns = thread_cpu_ns(tracer_.pid(), tid);
        if (cpu_ns && *cpu_ns - *thread.cpu_ns_at_check < kRanSinceCheckNs) {
          p.pending.push_back({tid, thread.held_by});
          continue;
        }
      }
      (blocked ? waiting : running).push_back(tid);
    }
    stop_and_visit(waiting, running, [&](pid_t tid, std::optional<arch::Registers> regs, Clock::time_point t0) {
      if (!regs)
        --p.total;  // exited meanwhile
      else if (!abort_.empty())
        tracer_.resume(tid);
      else
        visit(p, tid, *regs, t0);
    });
    if (!to_catch.empty()) catch_at_syscall(p, to_catch);
  }

  // Whether a stopped thread is in a system call: `orig_rax' set, and the
  // `syscall' instruction just before its pc.
  bool in_system_call(const arch::Registers& regs) const {
    uint8_t before[2] = {0, 0};
    memory_.try_read({arch::pc(regs) - 2}, before, 2);
    return arch::in_system_call(regs, before);
  }

  // Lazy: a thread that blocks too briefly to be seen blocked (a short
  // sleep; or on a loaded machine, where it waits for a CPU far longer than
  // in its call) is stopped once, wherever it runs, and sent on to stop
  // again at the entry of its next system call, where the next pass checks
  // it as a blocked one. (As kGraft sends a task that never leaves user
  // mode a fake signal.) A thread that makes no system call is not stopped
  // again: graft_quiescent() is its way.
  void catch_at_syscall(Pass& p, const std::vector<pid_t>& tids) {
    tracer_.stop_each(tids, [&](pid_t tid) {
      auto t0 = Clock::now();
      auto regs = handed_over(tid);
      if (!regs) {
        --p.total;  // exited meanwhile
        return;
      }
      if (!abort_.empty()) {
        tracer_.resume(tid);
        return;
      }
      threads_[tid].catch_asked = t0;
      if (in_system_call(*regs)) {  // it blocked meanwhile
        visit(p, tid, *regs, t0);
        return;
      }
      tracer_.resume_until_syscall(tid);
      p.pending.push_back({tid, kLazyCatching});
      result_.stalls_us.push_back(us_since(t0));
    });
  }

  // Stops each thread of `waiting' and `running' and calls `look(tid, regs,
  // t0)' with it stopped since t0 at the latest (`look' resumes it), or with
  // nullopt if it exited once stopped (one that exits on the way to its
  // stop is skipped). A thread waiting in the kernel stops
  // at once: one at a time, each stopped only while graft looks at it and,
  // before, at the one before it: the next one's stop (a wake-up, which
  // must wait for a CPU) overlaps graft's look at the current one. A
  // running thread stops only when it next gets a CPU (with more busy
  // threads than cores, up to a whole round of the scheduler): those are
  // interrupted together and each looked at as it stops.
  template <typename Look>
  void stop_and_visit(const std::vector<pid_t>& waiting, const std::vector<pid_t>& running, Look look) {
    auto since = Clock::now();  // no interrupt of the next thread went out before
    tracer_.stop_each(
        waiting,
        [&](pid_t tid) {
          auto t0 = since;
          since = Clock::now();
          look(tid, handed_over(tid), t0);
        },
        2);
    if (running.empty()) return;
    tracer_.stop_each(running, [&](pid_t tid) {
      auto t0 = Clock::now();
      look(tid, handed_over(tid), t0);
    });
  }

  // Checks one stopped thread, moves it if it may, resumes it.
  void visit(Pass& p, pid_t tid, arch::Registers regs, Clock::time_point t0) {
    Thread& thread = threads_[tid];
    uint64_t tp = thread.tp;
    if (!tp) {  // first stop of this thread: its pointer, and its entry if it has one
      try {
        tp = checked_thread_pointer(tid, regs);
        claim_thread_pointer(tid, tp);
      } catch (const Error& e) {
        tracer_.resume(tid);
        abort_ = e.what();
        return;
      }
      if (area_.universe_of(tp) == p.goal) {
        tracer_.resume(tid);
        result_.stalls_us.push_back(us_since(t0));
        ++p.moved;
        return;
      }
    }
    std::optional<std::string> why;
    if (p.kind == Model::lazy) {
      if (!in_system_call(regs)) why = "left its system call before graft looked";
    }
    // A thread in a gate (or at the first instruction after one) is taken
    // back to the entry it came through: busy callers of a small function
    // are in its gate most of the time.
    std::optional<arch::Registers> rewound;
    if (!why && p.kind == Model::hybrid) rewound = before_gate(regs, p.goal);
    bool walked = false;  // `why' is the stack check's
    if (!why) {
      p.check.forget_memory();
      why = p.check.check(tid, rewound ? *rewound : regs);
      walked = true;
    }
    if (!why) {
      if (rewound) {
        tracer_.set_registers(tid, *rewound);
        ++result_.rewound;
      }
      area_.put_universe(tp, p.goal);
      thread.held_by.clear();
      ++p.moved;
    } else {
      if (walked && !rewound) why = rewrite_return(tid, tp, regs, p, *why);
      p.pending.push_back({tid, *why});
      thread.held_by = *why;
      // Read while it is stopped: its CPU time at the check (only a thread
      // found busy needs it, see move_pass()).
      thread.cpu_ns_at_check = thread_cpu_ns(tracer_.pid(), tid);
    }
    tracer_.resume(tid);
    result_.stalls_us.push_back(us_since(t0));
  }

  // The registers of a thread stopped in a gate, or at the first instruction
  // of the code a gate sends to (the old path when moving to new, the
  // replacement when moving back), as they were at the function's entry,
  // with the pc there: once its universe flips, the entry's jump sends it
  // through the gate again, to the goal's code. nullopt elsewhere.
  std::optional<arch::Registers> before_gate(const arch::Registers& regs, Universe goal) const {
    uint64_t pc = arch::pc(regs);
    for (const auto& e : plan_.entries) {
      if (pc == (goal == Universe::New ? e.old_path : e.replacement)) {
        arch::Registers out = regs;
        arch::set_pc(out, e.site);
        return out;
      }
      if (pc < e.gate || pc - e.gate >= e.gate_code.size()) continue;
      uint64_t saved[3];
      if (!memory_.try_read({arch::sp(regs)}, saved, sizeof saved)) return std::nullopt;
      return arch::registers_before_gate(regs, e.gate_code, pc - e.gate, saved, e.site);
    }
    return std::nullopt;
  }

  // What a thread going to `goal' may not have on its stack: the code it
  // leaves, and the gates.
  std::vector<BusyRange> busy_for(Universe goal) const {
    std::vector<BusyRange> busy = goal == Universe::New ? plan_.old_code : plan_.new_code;
    busy.push_back(plan_.gates);
    return busy;
  }

  // Every thread is in `goal': the entries leave the gates for `goal''s code.
  // Going to old, no thread may be left in a gate or the patch's code then
  // (the region is about to go).
  void finish(Universe goal) {
    // Every thread is in `goal': a rewritten return still live belongs to a
    // thread that longjmp'd past it (dead stack) or one moved otherwise.
    restore_returns();
    write_live(goal == Universe::New ? plan_.to_new : plan_.to_old, false);
    guard_traps(false);
    if (goal == Universe::Old) {
      drain(busy_for(Universe::Old));
      return;
    }
    // Every thread is new: so is any thread the table does not list. A
    // thread still in a gate (sent there by a trap on the last writes) goes
    // on to the new code even once a later transition of this area (a
    // revert) clears the table.
    area_.set_goal(Universe::New);
    adopt_new_threads();  // any waiting for a slot: they need none now
    options_.set_state(TransitionPhase::applied);
  }

  // Reverses: every thread goes back where it came from with the same stack
  // checks (an apply rolls back, a revert rolls forward), and the entries
  // are as before the transition.
  void turn_around() {
    Universe back = from_;
    // No thread may return into a stub that moves it the old way.
    restore_returns();
    if (back == Universe::Old) options_.set_state(TransitionPhase::unapplying);
    // Threads in no entry are in the goal universe: they get an entry saying
    // so before the goal flips.
    area_.refresh();
    if (area_.goal() == target_)
      for (const auto& [tid, t] : threads_)
        if (tracer_.is_traced(tid) && t.tp && !area_.contains(t.tp)) area_.insert(t.tp, target_, back);
    area_.set_goal(back);
    target_ = back;
    std::string why = move_all(back, busy_for(back), Model::hybrid, false);
    if (!why.empty())
      throw TransitionStuck(fmt::format("{}, and turning back failed too: {}; the transition is left "
                                        "in progress (every thread runs the code of its universe)",
                                        result_.reason, why));
    arm_quiescent(false);
    finish(back);
  }

  // After the entries are restored, no thread may still be in a gate or in
  // the patch's code when the region is unmapped.
  void drain(const std::vector<BusyRange>& busy) {
    StackCheck check(tracer_.pid(), memory_, busy);
    std::set<pid_t> clean;
    auto start = Clock::now();
    for (;;) {
      std::optional<std::string> why;
      tracer_.poll_events(0);  // trapped threads sent on first, as in move_pass
      std::vector<pid_t> waiting, running;
      for (pid_t tid : tracer_.threads())
        if (!clean.count(tid)) (blocked_syscall(tracer_.pid(), tid) ? waiting : running).push_back(tid);
      stop_and_visit(waiting, running, [&](pid_t tid, std::optional<arch::Registers> regs, Clock::time_point t0) {
        if (!regs) return;
        check.forget_memory();
        auto busy_now = check.check(tid, *regs);
        tracer_.resume(tid);
        result_.stalls_us.push_back(us_since(t0));
        if (busy_now)
          why = busy_now;
        else
          clean.insert(tid);
      });
      adopt_new_threads();  // they start outside the patch: clean
      if (!why) return;
      if (ms_since(start) > options_.timeout_s * 1000)
        throw TransitionStuck(fmt::format("entries restored, but {}; the patch region stays mapped", *why));
      tracer_.poll_events(5000);
    }
  }

  // A return graft pointed at an exit stub, until the thread passes it.
  struct Rewrite {
    pid_t tid = 0;
    uint64_t tp = 0, slot = 0, original = 0;
    Universe goal = Universe::New;
    std::string what;  // the busy frame, for the report
  };

  // The stubs an earlier transition of the region used (the apply's, at a
  // revert) keep their return addresses: a thread that threw past its
  // frame may be inside the unwinder with the stub's address in hand. This
  // transition takes the stubs after them.
  void skip_used_stubs() {
    Bytes all(uint64_t(plan_.return_stub_count) * arch::kReturnStubSize);
    if (!memory_.try_read({plan_.return_stubs}, all.data(), all.size()))
      fail("process {}: cannot read the exit stubs at {:#x}", tracer_.pid(), plan_.return_stubs);
    for (uint32_t i = plan_.return_stub_count; i-- > 0;) {
      auto at = all.begin() + static_cast<std::ptrdiff_t>(uint64_t(i) * arch::kReturnStubSize);
      if (!std::all_of(at, at + arch::kReturnStubSize, [](uint8_t b) { return b == arch::kBreakpoint; })) {
        next_stub_ = i + 1;
        return;
      }
    }
  }

  // A thread held by a busy frame: points the return address of its
  // outermost busy frame at an exit stub that moves it the moment that
  // frame returns. Returns the reason to report for the thread.
  std::string rewrite_return(pid_t tid, uint64_t tp, const arch::Registers& regs, Pass& p, const std::string& why) {
    for (auto it = rewrites_.begin(); it != rewrites_.end(); ++it) {
      if (it->second.tid != tid) continue;
      uint64_t word = 0;
      if (it->second.slot >= arch::sp(regs) && memory_.try_read({it->second.slot}, &word, sizeof word) &&
          word == it->first)
        return fmt::format("{}; moves when it returns (its return leads to an exit stub)", it->second.what);
      // It left that frame by an exception or a longjmp, never running the
      // stub, and is busy again: its new frame may have a stub of its own.
      rewrites_.erase(it);
      break;
    }
    if (!returns_enabled_ || options_.force || next_stub_ >= plan_.return_stub_count) return why;
    auto ret = p.check.outermost_busy_return(regs);
    if (!ret) return why;
    if (std::string no = return_traps_.refusal(tid); !no.empty()) {
      if (result_.returns_refused.empty()) result_.returns_refused = no;
      returns_enabled_ = false;
      return why;
    }
    uint64_t stub = plan_.return_stubs + uint64_t(next_stub_++) * arch::kReturnStubSize;
    uint64_t byte = area_.universe_byte(tp);
    Bytes code = arch::return_stub_code(stub, byte, static_cast<uint8_t>(p.goal),
                                        {ret->original, ret->slot, static_cast<uint32_t>(tid)});
    // The stub first, then the slot: the thread (stopped) reaches it only by
    // that return, after it is resumed (which serializes its core).
    memory_.write({stub}, code);
    memory_.write_value({ret->slot}, stub);
    rewrites_[stub] = {tid, tp, ret->slot, ret->original, p.goal, why};
    ++result_.returns_rewritten;
    fault_point("return-rewritten");
    return fmt::format("{}; moves when it returns (its return leads to an exit stub)", why);
  }

  // Threads that trapped on their stub's int3 have left the code being
  // replaced: each moves (its stub writes the same byte once it runs on).
  void take_stub_hits() {
    if (stub_hits_->empty()) return;
    for (auto [stub, when] : *stub_hits_) {
      auto it = rewrites_.find(stub);
      if (it == rewrites_.end()) continue;  // put back meanwhile, or a stale trap
      if (it->second.goal == target_) area_.put_universe(it->second.tp, target_);
      threads_[it->second.tid].held_by.clear();
      ++result_.returns_passed;
      last_return_ = when;
      rewrites_.erase(it);
    }
    stub_hits_->clear();
  }

  // Puts back every rewritten return address a thread has not returned
  // through yet (see restore_return()).
  void restore_returns() {
    tracer_.poll_events(0);
    take_stub_hits();
    for (const auto& [stub, r] : rewrites_) {
      if (!tracer_.is_traced(r.tid)) continue;
      auto t0 = Clock::now();
      auto regs = stop_thread(r.tid);
      if (!regs) continue;
      if (restore_return(memory_, *regs, stub, r.slot, r.original)) ++result_.returns_restored;
      tracer_.resume(r.tid);
      result_.stalls_us.push_back(us_since(t0));
    }
    rewrites_.clear();
    // A trap of a thread that passed its stub before it was stopped
    // concerns a return no longer tracked.
    tracer_.poll_events(0);
    stub_hits_->clear();
  }

  Tracer& tracer_;
  const ProcessMemory& memory_;
  const TransitionPlan& plan_;
  const TransitionOptions& options_;
  TransitionResult& result_;
  TransitionArea area_;
  std::map<pid_t, Thread> threads_;
  std::vector<uint64_t> initial_;
  bool gates_live_ = false;
  Universe from_ = Universe::Old;    // where the threads were before the transition
  Universe target_ = Universe::New;  // where the transition takes threads now
  std::vector<pid_t> unborn_;        // new threads held stopped until a slot is free
  std::string abort_;                // why the transition must be reversed
  Clock::time_point move_start_;
  int membarrier_ = 0;  // 0 unknown, 1 registered, -1 unavailable
  bool returns_enabled_ = false;
  ReturnTrapPolicy return_traps_;
  uint32_t next_stub_ = 0;  // stubs are not reused while the region lives
  std::map<uint64_t, Rewrite> rewrites_;  // by stub
  // Stubs whose int3 trapped (the breakpoint handler, which outlives this
  // object, appends to it).
  using StubHits = std::vector<std::pair<uint64_t, Clock::time_point>>;
  std::shared_ptr<StubHits> stub_hits_ = std::make_shared<StubHits>();
  std::optional<Clock::time_point> last_return_;  // when graft saw the last return through a stub
};

}  // namespace

void run_per_thread_apply(Tracer& tracer, const ProcessMemory& memory, const TransitionPlan& plan,
                          const TransitionOptions& options, TransitionResult& result) {
  Transition(tracer, memory, plan, options, result).run(Universe::Old, Universe::New);
}

void run_per_thread_revert(Tracer& tracer, const ProcessMemory& memory, const TransitionPlan& plan,
                           const TransitionOptions& options, TransitionResult& result) {
  Transition(tracer, memory, plan, options, result).run(Universe::New, Universe::Old);
}

}  // namespace graft
