#include "consistency/stop_model.h"

#include <sched.h>

#include <algorithm>
#include <thread>

#include "common/clock.h"
#include "common/error.h"

namespace graft {

namespace {

// Writes the plan with every thread stopped; undoes what it wrote if a write
// fails midway.
void write_sites(const ProcessMemory& memory, const SwitchPlan& plan, pid_t pid) {
  for (const auto& w : plan.writes) {
    Bytes now = memory.read(w.site, w.expected.size());
    if (now != w.expected)
      fail("process {}: the entry of `{}' at {} changed since graft read it (another patcher?)", pid,
           w.function, w.site);
  }
  size_t done = 0;
  try {
    for (; done < plan.writes.size(); ++done) memory.write(plan.writes[done].site, plan.writes[done].bytes);
  } catch (...) {
    for (size_t i = 0; i < done; ++i) memory.write(plan.writes[i].site, plan.writes[i].expected);
    throw;
  }
}

// While every thread of the target is stopped, graft must not be preempted by
// the target's threads that it has already resumed: on a loaded machine that
// costs a whole scheduler tick (4 ms) per preemption. Real-time priority for
// the duration of the switch, where allowed, restored on scope exit.
class RealtimePriority {
 public:
  RealtimePriority() {
    policy_ = sched_getscheduler(0);
    sched_getparam(0, &param_);
    sched_param rt{};
    rt.sched_priority = 1;
    raised_ = sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &rt) == 0;
  }
  ~RealtimePriority() {
    if (raised_) sched_setscheduler(0, policy_, &param_);
  }

 private:
  int policy_;
  sched_param param_{};
  bool raised_ = false;
};

}  // namespace

SwitchResult run_stop_model(Tracer& tracer, const ProcessMemory& memory, const SwitchPlan& plan,
                            const StopOptions& options, const std::function<void()>& while_stopped) {
  StackCheck check(tracer.pid(), memory, plan.busy);
  RealtimePriority priority;
  SwitchResult result;
  auto start = Clock::now();
  auto backoff = std::chrono::microseconds(500);
  for (;;) {
    auto stop_start = Clock::now();
    tracer.stop_all();
    check.forget_memory();
    std::optional<std::string> busy;
    for (pid_t tid : tracer.threads()) {
      if ((busy = check.check(tid, tracer.registers(tid)))) break;
    }
    if (!busy) {
      try {
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
      return result;
    }
    tracer.resume_all();
    result.max_pause_ms = std::max(result.max_pause_ms, ms_since(stop_start));
    if (ms_since(start) > options.timeout_s * 1000)
      fail("{} (gave up after {:.1f} s and {} retries)", *busy, options.timeout_s, result.retries);
    ++result.retries;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::microseconds(20000));
  }
}

}  // namespace graft
