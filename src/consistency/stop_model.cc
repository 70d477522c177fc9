#include "consistency/stop_model.h"

#include <set>
#include <thread>

#include "common/interrupt.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault_point.h"

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

// A thread stopped with its pc inside code being replaced (a leaf call in
// progress) would make the whole stop fail, and under load some thread
// nearly always is. Instead it runs on alone for a few microseconds at a
// time, while every other thread stays stopped, until a stop finds it out
// of that code. Bounded in time: every other thread waits meanwhile.
//
// Not single-stepping, on purpose: a thread with the trap flag set, or with
// a step's SIGTRAP pending, is killed by that SIGTRAP if graft dies (the
// kernel detaches it and delivers the trap). A thread merely running alone
// just goes on running.
constexpr double kMaxRunAloneMsPerStop = 2.0;
constexpr auto kRunAloneSlice = std::chrono::microseconds(15);

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

}  // namespace

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
  result = {};
  auto start = Clock::now();
  auto backoff = std::chrono::microseconds(500);
  for (;;) {
    auto stop_start = Clock::now();
    tracer.stop_all();
    check.forget_memory();
    std::optional<std::string> busy;
    auto run_deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double, std::milli>(kMaxRunAloneMsPerStop));
    for (pid_t tid : tracer.threads()) {
      busy = check_thread(tid);
      if (busy && check.in_busy_code(arch::pc(tracer.registers(tid)))) {
        bool left = false;
        try {
          left = run_out(tracer, check, tid, run_deadline);
        } catch (const Error&) {
          // The thread exited while running alone (or the whole process was
          // killed): retry with a fresh stop, which finds out which.
        }
        if (left) {
          ++result.threads_run_out;
          check.forget_memory();  // its stack changed
          busy = check_thread(tid);
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
