#include "process/thread_alarm.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

namespace graft {

namespace {

bool handler_installed() {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the interrupted wait returns EINTR
    return sigaction(SIGALRM, &sa, nullptr) == 0;
  }();
  return installed;
}

struct ThreadTimer {
  timer_t id{};
  bool made = false;
  ~ThreadTimer() {
    if (made) timer_delete(id);
  }
};

thread_local ThreadTimer timer;

timespec to_timespec(long us) { return {us / 1000000, (us % 1000000) * 1000}; }

}  // namespace

bool arm_thread_alarm(long first_us, long every_us) {
  if (!handler_installed()) return false;
  if (!timer.made) {
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGALRM;
    ev._sigev_un._tid = gettid();  // sigev_notify_thread_id: not named by glibc's headers
    if (timer_create(CLOCK_MONOTONIC, &ev, &timer.id) != 0) return false;
    timer.made = true;
  }
  sigset_t alarm;
  sigemptyset(&alarm);
  sigaddset(&alarm, SIGALRM);
  pthread_sigmask(SIG_UNBLOCK, &alarm, nullptr);
  itimerspec spec{to_timespec(every_us), to_timespec(first_us > 0 ? first_us : 1)};
  return timer_settime(timer.id, 0, &spec, nullptr) == 0;
}

void disarm_thread_alarm() {
  if (!timer.made) return;
  itimerspec off{};
  // A signal that fired meanwhile is delivered (and ignored) on the return
  // from this call: it cannot end a later wait.
  timer_settime(timer.id, 0, &off, nullptr);
}

}  // namespace graft
