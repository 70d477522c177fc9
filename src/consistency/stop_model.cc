#include "consistency/stop_model.h"

#include <algorithm>
#include <set>
#include <thread>

#include "arch/x86_64/stop_stub.h"
#include "common/interrupt.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault_point.h"
#include "consistency/return_traps.h"

namespace graft {

namespace {

// Writes the plan with every thread stopped; undoes what it wrote if a write
// fails midway.
// The writes in order (a place may be written twice: an entry to its
// switch gate, later to its replacement); what each expects to find is
// checked before anything is written, except where an earlier write of the
// plan puts it. Undone in reverse order on failure.
void write_sites(const ProcessMemory& memory, const SwitchPlan& plan, pid_t pid) {
  std::set<uint64_t> written;
  for (const auto& w : plan.writes) {
    if (written.insert(w.site.value).second && !w.expected.empty() &&
        memory.read(w.site, w.expected.size()) != w.expected)
      fail("process {}: the entry of `{}' at {} changed since graft read it (another patcher?)", pid,
           w.function, w.site);
  }
  size_t done = 0;
  try {
    for (; done < plan.writes.size(); ++done) {
      memory.write(plan.writes[done].site, plan.writes[done].bytes);
      fault_point(plan.writes[done].activation ? "activated" : "entry-written");
    }
  } catch (...) {
    while (done-- > 0)
      if (!plan.writes[done].expected.empty()) memory.write(plan.writes[done].site, plan.writes[done].expected);
    throw;
  }
}

// A thread stopped with code being replaced on its stack (a call in
// progress) would make the whole stop fail, and under load some thread
// nearly always is. Instead it runs on alone, while every other thread
// stays stopped, until the outermost frame in that code returns: its return
// address leads to the stop stub (arch/x86_64/stop_stub.h), whose system
// call stops it there. Not single-stepping, nor an int3: a thread with the
// trap flag set, or one that executes an int3 with graft gone, dies of the
// SIGTRAP. If graft dies while the thread runs, the stub returns on its own.
//
// Where no stub may serve (no room for one, or a process that unwinds its
// stacks: see consistency/return_traps.h), the thread runs alone in slices
// of a few microseconds until a stop finds its pc out of that code.
//
// Either way bounded in time (every other thread waits meanwhile): each
// stop may spend a budget on it, doubled by each stop that failed, up to a
// bound that grows with the number of threads (each one caught costs tens
// of microseconds).
constexpr auto kRunAloneSlice = std::chrono::microseconds(15);

double run_alone_budget_ms(int retries, size_t threads) {
  double bound = std::max(10.0, 0.05 * static_cast<double>(threads));
  return std::min(bound, 2.0 * static_cast<double>(1 << std::min(retries, 10)));
}

bool run_out(Tracer& tracer, const StackCheck& check, pid_t tid, Clock::time_point deadline) {
  while (Clock::now() < deadline) {
    tracer.resume(tid);
    fault_point("running-alone");
    auto until = Clock::now() + kRunAloneSlice;
    while (Clock::now() < until) {
    }
    // A thread of low priority on a loaded machine may take long to stop:
    // never past the budget (every other thread is waiting).
    if (!tracer.try_stop(tid, deadline)) return false;
    if (!check.in_busy_code(arch::pc(tracer.registers(tid)))) return true;
  }
  return false;
}

// A stopped thread whose return graft pointed at the stop stub at `stub`
// gets it back: moved out of the stub if it is inside (as if it had run
// to its end), or its return address put back unless it has returned
// (put_back_return_address). Then the stub is free (retired).
void put_back_return(Tracer& tracer, const ProcessMemory& memory, uint64_t stub, const arch::ReturnStub& s,
                     pid_t tid) {
  arch::Registers regs = tracer.registers(tid);
  if (arch::in_stop_stub(arch::pc(regs), stub)) {
    uint64_t top[3] = {};
    if (!memory.try_read({arch::sp(regs)}, top, sizeof top))
      fail("process {}: cannot read the stack of thread {} at {:#x}", tracer.pid(), tid, arch::sp(regs));
    arch::Registers out = arch::leave_stop_stub(regs, s.original, stub, top);
    if (tracer.at_syscall_entry(tid))
      tracer.skip_syscall(tid, out);
    else
      tracer.set_registers(tid, out);
  } else {
    put_back_return_address(memory, regs, stub, s.slot, s.original);
  }
  // A thread that threw past its frame may be inside the unwinder with the
  // stub's address in hand (waiting on a lock a stopped thread holds).
  memory.write({stub}, arch::retired_stop_stub(stub, s.original));
}

// Runs thread `tid` alone until its frame whose return address lies at
// `ret.slot` returns, or until `deadline`. Then, if the thread stopped, it
// has its own return address again, wherever it is, and the stub is free:
// true. False if it did not stop at once at the deadline (a thread waiting
// for a CPU): the stub stays in use until release_stop_stub(), once the
// thread has stopped; if it returns meanwhile, the stub runs on its own.
bool run_to_return(Tracer& tracer, const ProcessMemory& memory, uint64_t stub, pid_t tid,
                   const StackCheck::ReturnSlot& ret, Clock::time_point deadline) {
  arch::ReturnStub s{ret.original, ret.slot, static_cast<uint32_t>(tid)};
  // The stub first: from the return address's write on, the thread may
  // run through it without graft.
  memory.write({stub}, arch::stop_stub_code(stub, s));
  memory.write_value({ret.slot}, stub);
  fault_point("return-trapped");
  Tracer::RunEnd end;
  try {
    end = tracer.run_to_syscall_at(tid, stub + arch::kStopStubSyscallEnd, deadline);
  } catch (const Error&) {
    // Gone, and its stack with it (or the whole process).
    try {
      memory.write({stub}, arch::unused_stop_stub(stub));
    } catch (const Error&) {
    }
    throw;
  }
  if (end == Tracer::RunEnd::running) return false;
  put_back_return(tracer, memory, stub, s, tid);
  return true;
}

}  // namespace

bool release_stop_stub(Tracer& tracer, const ProcessMemory& memory, uint64_t stub) {
  Bytes code(arch::kStopStubSize);
  if (!memory.try_read({stub}, code.data(), code.size())) return false;
  auto s = arch::parse_stop_stub(code);
  if (!s) return false;
  pid_t tid = static_cast<pid_t>(s->tid);
  if (!tracer.is_traced(tid)) {  // exited: its stack is gone
    memory.write({stub}, arch::unused_stop_stub(stub));
    return true;
  }
  bool was_stopped = tracer.is_stopped(tid);
  tracer.stop(tid);
  put_back_return(tracer, memory, stub, *s, tid);
  if (!was_stopped) tracer.resume(tid);
  return true;
}

void run_stop_model(Tracer& tracer, const ProcessMemory& memory, const SwitchPlan& plan,
                    const StopOptions& options, const std::function<void()>& while_stopped,
                    SwitchResult& result) {
  StackCheck check(tracer.pid(), memory, plan.busy);
  auto check_thread = [&](pid_t tid) -> std::optional<std::string> {
    if (!options.pc_only) return check.check(tid, tracer.registers(tid));
    uint64_t pc = arch::pc(tracer.registers(tid));
    if (!check.in_busy_code(pc)) return std::nullopt;
    return fmt::format("thread {} is at {:#x}, where graft writes", tid, pc);
  };
  // The stop stub, if it may serve in this process: decided when a thread
  // first needs it (most stops find none busy), and once (what the process
  // maps changes little while graft waits).
  uint64_t stub = plan.stop_stub;
  if (return_stubs_disabled()) stub = 0;
  bool stub_checked = false;
  // A return trap whose thread did not stop at the end of its run: the stub
  // stays in use until that thread is next stopped.
  bool trap_pending = false;
  auto release_pending = [&] {
    if (!trap_pending) return;
    trap_pending = false;
    release_stop_stub(tracer, memory, stub);
  };
  // However the model ends: a success has none pending (its stop found
  // every thread stopped).
  struct ReleaseAtEnd {
    decltype(release_pending)& release;
    ~ReleaseAtEnd() {
      try {
        release();
      } catch (const Error&) {
        // The process is gone, or the thread.
      }
    }
  } release_at_end{release_pending};
  // A busy thread, run alone until out of the code being replaced (see
  // above). False if it did not get out, or is gone.
  auto run_alone = [&](pid_t tid, Clock::time_point deadline) {
    arch::Registers regs = tracer.registers(tid);
    if (stub && !stub_checked) {
      stub_checked = true;
      if (!ReturnTrapPolicy(tracer.pid(), plan.stop_stub_unwind).refusal(tracer.pid()).empty()) stub = 0;
    }
    try {
      if (stub) {
        auto ret = check.outermost_busy_return(regs);
        if (!ret) return false;
        if (!run_to_return(tracer, memory, stub, tid, *ret, deadline)) {
          trap_pending = true;
          return false;
        }
      } else {
        if (!check.in_busy_code(arch::pc(regs)) || !run_out(tracer, check, tid, deadline)) return false;
      }
    } catch (const Error&) {
      // The thread exited while running alone (or the whole process was
      // killed): retry with a fresh stop, which finds out which. A return
      // trap left in use is released first.
      if (stub) try {
          release_stop_stub(tracer, memory, stub);
        } catch (const Error&) {
        }
      return false;
    }
    check.forget_memory();  // its stack changed
    return true;
  };
  result = {};
  auto start = Clock::now();
  auto backoff = std::chrono::microseconds(500);
  for (;;) {
    auto stop_start = Clock::now();
    tracer.stop_all();
    release_pending();
    check.forget_memory();
    std::optional<std::string> busy;
    // The budget counts the time threads run alone, not the checks.
    auto run_left = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(
        run_alone_budget_ms(result.retries, tracer.thread_count())));
    for (pid_t tid : tracer.threads()) {
      busy = check_thread(tid);
      if (busy && run_left > Clock::duration::zero()) {
        auto run_start = Clock::now();
        bool out = run_alone(tid, run_start + run_left);
        run_left -= Clock::now() - run_start;
        if (out) {
          busy = check_thread(tid);
          if (!busy) ++result.threads_run_out;
        }
      }
      if (busy) break;
    }
    // Every thread of the process must be one graft stopped and checked: a
    // thread created meanwhile (its clone racing the stop) would run
    // through the writes unchecked.
    if (!busy)
      for (pid_t tid : list_threads(tracer.pid()))
        if (!tracer.is_traced(tid)) {
          busy = fmt::format("thread {} appeared during the stop", tid);
          break;
        }
    if (!busy) {
      try {
        fault_point("stopped");
        if (options.before_writes) options.before_writes();
        write_sites(memory, plan, tracer.pid());
        while_stopped();
      } catch (...) {
        tracer.resume_all();
        throw;
      }
      if (options.detach_after)
        tracer.detach();
      else
        tracer.resume_all();
      result.pause_ms = ms_since(stop_start);
      result.max_pause_ms = std::max(result.max_pause_ms, result.pause_ms);
      return;
    }
    tracer.resume_all();
    result.max_pause_ms = std::max(result.max_pause_ms, ms_since(stop_start));
    if (int sig = interrupt_signal())
      fail(ErrorCode::interrupted, "interrupted by {} before the switch ({} retries; last: {})",
           signal_name(sig), result.retries, *busy);
    if (ms_since(start) > options.timeout_s * 1000)
      fail(ErrorCode::busy, "{} (gave up after {:.1f} s and {} retries)", *busy, options.timeout_s,
           result.retries);
    ++result.retries;
    // Waiting for the next try, graft still handles the threads' events: a
    // thread of a traced process stops for every signal it is sent until
    // graft passes it on. Asleep instead, graft would hold a thread that a
    // signal caught inside a busy function there until the next try, which
    // then finds it there again (tests/e2e/churn_during_apply.sh: workers
    // signalled every 100 us, held inside compute() for 30 s of tries).
    auto left = std::chrono::duration<double, std::milli>(options.timeout_s * 1000 - ms_since(start));
    auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::min<std::chrono::duration<double, std::milli>>(backoff, left));
    if (!options.serve_events_between_tries)
      std::this_thread::sleep_until(until);
    else
      for (auto now = Clock::now(); now < until; now = Clock::now())
        tracer.poll_events(std::chrono::duration_cast<std::chrono::microseconds>(until - now).count());
    backoff = std::min(backoff * 2, std::chrono::microseconds(20000));
  }
}

}  // namespace graft
