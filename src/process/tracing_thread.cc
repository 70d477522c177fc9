#include "process/tracing_thread.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <string>
#include <thread>

namespace graft {

namespace {

thread_local bool tracing_thread = false;
thread_local bool exit_detach_used = false;

}  // namespace

bool exit_detaches_here() { return tracing_thread && !exit_detach_used; }
void mark_exit_detach_used() { exit_detach_used = true; }

void run_tracing_thread(const std::function<void()>& job) {
  int policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
  sched_param param{};
  sched_getparam(0, &param);
  std::exception_ptr failure;
  pid_t tid = 0;
  // On the CPU graft runs on now. Placed by the scheduler, the new thread
  // (created normal, then raised to real-time) could land on the CPU where
  // a thread of the target runs and preempt it there, and that thread then
  // waited for the next balancing tick (4 ms) with the other CPU idle: 3-5 ms
  // heartbeat gaps in a third of the applies at 66 idle threads.
  int cpu = sched_getcpu();
  std::thread worker([&] {
    tid = gettid();
    if (cpu >= 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      sched_setaffinity(0, sizeof one, &one);
    }
    tracing_thread = true;
    if (policy == SCHED_FIFO || policy == SCHED_RR)
      sched_setscheduler(0, policy | SCHED_RESET_ON_FORK, &param);
    try {
      job();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  // join() returns when the thread has released its memory, before the
  // kernel detaches its tracees (exit_notify comes later): the thread's
  // /proc entry goes only after that. Another Tracer may attach to the same
  // process next.
  std::string entry = "/proc/self/task/" + std::to_string(tid);
  struct stat st;
  for (int i = 0; i < 100000 && stat(entry.c_str(), &st) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::microseconds(10));
  if (failure) std::rethrow_exception(failure);
}

}  // namespace graft
