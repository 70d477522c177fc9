// graft runs at real-time priority (SCHED_FIFO 1) while it works on a
// process, where it is allowed to. The target's threads compete with graft
// for the CPUs: with 64 busy threads on 2 cores, graft at normal priority
// gets a 1/33 share and an apply takes 600 ms instead of 15; and while every
// thread is stopped, each preemption by an already-resumed thread costs a
// 4 ms scheduler tick of global pause. graft's work is short and bounded,
// and it waits (blocked in waitpid) between retries. The previous policy
// comes back on scope exit; children never inherit it (the thread that
// traces is given it explicitly, process/tracing_thread.h).
#pragma once
#include <sched.h>

namespace graft {

class RealtimePriority {
 public:
  RealtimePriority() {
    policy_ = sched_getscheduler(0);
    sched_getparam(0, &param_);
    sched_param rt{};
    rt.sched_priority = 1;
    raised_ = policy_ != SCHED_FIFO && sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &rt) == 0;
  }
  ~RealtimePriority() {
    if (raised_) sched_setscheduler(0, policy_, &param_);
  }
  RealtimePriority(const RealtimePriority&) = delete;
  RealtimePriority& operator=(const RealtimePriority&) = delete;

 private:
  int policy_;
  sched_param param_{};
  bool raised_ = false;
};

}  // namespace graft
