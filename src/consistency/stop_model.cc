#include "consistency/stop_model.h"

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

// A thread stopped with its pc inside code being replaced (a leaf call in
// progress) would make the whole stop fail, and under load some thread
// nearly always is. Instead it runs on alone, one instruction at a time,
// until it leaves that code, while every other thread stays stopped. A
// system call instruction ends the attempt: it might block.
constexpr int kMaxStepsPerThread = 2000;
constexpr int kMaxStepsPerStop = 20000;

bool step_out(Tracer& tracer, const ProcessMemory& memory, const StackCheck& check, pid_t tid,
              int& budget) {
  for (int i = 0; i < kMaxStepsPerThread && budget > 0; ++i, --budget) {
    uint64_t pc = arch::pc(tracer.registers(tid));
    if (!check.in_busy_code(pc)) return true;
    uint8_t insn[sizeof arch::kSyscallInstruction];
    if (!memory.try_read({pc}, insn, sizeof insn) ||
        std::equal(insn, insn + sizeof insn, arch::kSyscallInstruction))
      return false;
    tracer.single_step(tid);
  }
  return false;
}

}  // namespace

SwitchResult run_stop_model(Tracer& tracer, const ProcessMemory& memory, const SwitchPlan& plan,
                            const StopOptions& options, const std::function<void()>& while_stopped) {
  StackCheck check(tracer.pid(), memory, plan.busy);
  SwitchResult result;
  auto start = Clock::now();
  auto backoff = std::chrono::microseconds(500);
  for (;;) {
    auto stop_start = Clock::now();
    tracer.stop_all();
    check.forget_memory();
    std::optional<std::string> busy;
    int step_budget = kMaxStepsPerStop;
    for (pid_t tid : tracer.threads()) {
      busy = check.check(tid, tracer.registers(tid));
      if (busy && check.in_busy_code(arch::pc(tracer.registers(tid)))) {
        bool left = false;
        try {
          left = step_out(tracer, memory, check, tid, step_budget);
        } catch (const Error&) {
          left = !tracer.is_traced(tid);  // the thread exited while stepping
        }
        if (left) {
          ++result.stepped_threads;
          check.forget_memory();  // its stack changed
          busy = tracer.is_traced(tid) ? check.check(tid, tracer.registers(tid)) : std::nullopt;
        }
      }
      if (busy) break;
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
    auto left = std::chrono::duration<double, std::milli>(options.timeout_s * 1000 - ms_since(start));
    std::this_thread::sleep_for(std::min<std::chrono::duration<double, std::milli>>(backoff, left));
    backoff = std::min(backoff * 2, std::chrono::microseconds(20000));
  }
}

}  // namespace graft
