#include "common/interrupt.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/error.h"

namespace graft {

namespace {
std::atomic<int> requested{0};
std::atomic<int> wake_fd{-1};
std::once_flag watching;

void start_watching() {
  wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  // Blocked here, inherited by every thread graft starts: only the waiter
  // below sees them, so no system call of graft's is interrupted.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    // Every other signal stays away from this thread: the tracer's SIGALRM
    // is sent to the thread that waits (process/thread_alarm.h), and a
    // process-directed signal must not land here either.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, nullptr);
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      int none = 0;
      requested.compare_exchange_strong(none, sig);
      uint64_t one = 1;
      if (int fd = wake_fd.load(); fd >= 0 && write(fd, &one, sizeof one) < 0) {
        // The counter is full: the fd is readable anyway.
      }
    }
  }).detach();
}

}  // namespace

void watch_interrupts() { std::call_once(watching, start_watching); }

int interrupt_wake_fd() { return wake_fd.load(); }

int interrupt_signal() { return requested.load(std::memory_order_relaxed); }

void throw_if_interrupted(const std::string& when) {
  if (int sig = interrupt_signal()) fail(ErrorCode::interrupted, "interrupted by {} {}", signal_name(sig), when);
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : fmt::format("signal {}", sig);
}

}  // namespace graft
