/* signals.c: a target that counts every signal and system-call result a
 * live patcher could disturb (signals_invisible.sh).
 *
 * work(x) is the function the test replaces (3x+1, 3x+2 patched). Threads:
 *   worker    calls work() in a loop, napping 1 ms after each call (under
 *             the lazy model it moves only while blocked in a call, and a
 *             thread that spins is never seen blocked on a loaded machine)
 *   reader    read() on a pipe nobody writes to
 *   (these two and the main thread are the ones that take the timer
 *   signals; graft borrows the main thread for its system calls)
 *   epoll     epoll_wait(350 ms) in a loop on an idle epoll set
 *   timerfd   read() on a 5 ms timerfd, counting its expirations
 *   sleeper   clock_nanosleep(TIMER_ABSTIME) 7 ms ahead, in a loop
 *   blockall  blocks every signal; calls work() and nanosleep(3 ms)
 *   main      serve() (read() on stdin)
 * Signals: a POSIX timer (SIGRTMIN, SA_SIGINFO|SA_RESTART, SIGEV_SIGNAL,
 * value 4242, every 5 ms) and setitimer(ITIMER_REAL) (SIGALRM, every 7 ms).
 * Nothing in the program itself ever makes a call fail with EINTR: every
 * thread that may take a signal either blocks in a call that SA_RESTART
 * restarts (read) or in no call at all.
 *
 * Commands (see serve.h):
 *   call      work(5): 16 old, 17 new
 *   stats     waits until each counter has moved on without graft, then
 *             answers "key=value ..." (see report())
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>

#include "serve.h"

#define RT_PERIOD_NS 5000000L
#define ALRM_PERIOD_US 7000L
#define TFD_PERIOD_NS 5000000L
#define EPOLL_MS 350
#define SLEEP_NS 7000000L
#define NAP_NS 3000000L

__attribute__((noinline)) int work(int x) { return 3 * x + 1; }
static int (*volatile work_ptr)(int) = work;

static atomic_long calls, bad_calls;
static atomic_long epoll_eintr, epoll_other, epoll_early, epoll_rounds;
static atomic_long read_eintr, read_other;
static atomic_long tfd_eintr, tfd_other, tfd_expirations, tfd_reads, tfd_lost;
static atomic_long sleep_eintr, sleep_other, sleep_early, sleep_rounds;
static atomic_long nap_eintr, nap_early, nap_rounds, mask_changed;
/* Written by the handlers (volatile sig_atomic-like longs, one writer at a
 * time: each handler blocks its own signal). */
static atomic_long rt_received, rt_overruns, rt_wrong, rt_deficit;
static atomic_long alrm_received, alrm_wrong;
static struct timespec rt_start, tfd_start;

static long ns_since(const struct timespec *t0) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - t0->tv_sec) * 1000000000L + (now.tv_nsec - t0->tv_nsec);
}

static void on_rt(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  int saved = errno;
  atomic_fetch_add(&rt_received, 1);
  if (si->si_code != SI_TIMER || si->si_value.sival_int != 4242) {
    atomic_fetch_add(&rt_wrong, 1);
  } else {
    atomic_fetch_add(&rt_overruns, si->si_overrun);
  }
  /* Expirations so far by the clock, minus those signalled: stays near 0
   * unless a signal (and the overruns it carried) was lost. */
  long due = ns_since(&rt_start) / RT_PERIOD_NS;
  atomic_store(&rt_deficit, due - atomic_load(&rt_received) - atomic_load(&rt_overruns));
  errno = saved;
}

static void on_alrm(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  atomic_fetch_add(&alrm_received, 1);
  if (si->si_code != SI_KERNEL) atomic_fetch_add(&alrm_wrong, 1);
}

static void block_timer_signals(void) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGRTMIN);
  sigaddset(&s, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &s, NULL);
}

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    int r = work_ptr(5);
    if (r != 16 && r != 17) atomic_fetch_add(&bad_calls, 1);
    atomic_fetch_add(&calls, 1);
    for (volatile int i = 0; i < 2000; i++) {
    }
    struct timespec nap = {0, 1000000};
    nanosleep(&nap, NULL);
  }
  return NULL;
}

static int idle_pipe[2];

static void *reader(void *arg) {
  (void)arg;
  char c;
  for (;;) {
    ssize_t r = read(idle_pipe[0], &c, 1);
    if (r < 0 && errno == EINTR) atomic_fetch_add(&read_eintr, 1);
    else atomic_fetch_add(&read_other, 1);
  }
  return NULL;
}

static void *epoller(void *arg) {
  (void)arg;
  block_timer_signals();
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN}, out;
  epoll_ctl(ep, EPOLL_CTL_ADD, idle_pipe[0], &ev);
  for (;;) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r = epoll_wait(ep, &out, 1, EPOLL_MS);
    long took = ns_since(&t0);
    if (r < 0 && errno == EINTR) atomic_fetch_add(&epoll_eintr, 1);
    else if (r != 0) atomic_fetch_add(&epoll_other, 1);
    else if (took < EPOLL_MS * 1000000L) atomic_fetch_add(&epoll_early, 1);
    atomic_fetch_add(&epoll_rounds, 1);
  }
  return NULL;
}

static void *timerfd_reader(void *arg) {
  int fd = *(int *)arg;
  block_timer_signals();
  for (;;) {
    uint64_t n;
    /* Every expiration due before the read is counted by it (1 period of
     * slack for the start, 1 for the timer's own lateness). */
    long due = ns_since(&tfd_start) / TFD_PERIOD_NS;
    ssize_t r = read(fd, &n, sizeof n);
    if (r < 0 && errno == EINTR) atomic_fetch_add(&tfd_eintr, 1);
    else if (r != sizeof n) atomic_fetch_add(&tfd_other, 1);
    else if (atomic_fetch_add(&tfd_expirations, (long)n) + (long)n < due - 2) atomic_fetch_add(&tfd_lost, 1);
    atomic_fetch_add(&tfd_reads, 1);
  }
  return NULL;
}

static void *sleeper(void *arg) {
  (void)arg;
  block_timer_signals();
  for (;;) {
    struct timespec until, now;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += SLEEP_NS;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (r == EINTR) atomic_fetch_add(&sleep_eintr, 1);
    else if (r != 0) atomic_fetch_add(&sleep_other, 1);
    else if (now.tv_sec < until.tv_sec || (now.tv_sec == until.tv_sec && now.tv_nsec < until.tv_nsec))
      atomic_fetch_add(&sleep_early, 1);
    atomic_fetch_add(&sleep_rounds, 1);
  }
  return NULL;
}

static void *blockall(void *arg) {
  (void)arg;
  sigset_t all, now;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, NULL);
  pthread_sigmask(SIG_SETMASK, NULL, &all);  /* as the kernel keeps it */
  for (;;) {
    int r = work_ptr(5);
    if (r != 16 && r != 17) atomic_fetch_add(&bad_calls, 1);
    struct timespec nap = {0, NAP_NS}, t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = nanosleep(&nap, NULL);
    if (rc != 0 && errno == EINTR) atomic_fetch_add(&nap_eintr, 1);
    else if (ns_since(&t0) < NAP_NS) atomic_fetch_add(&nap_early, 1);
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    if (memcmp(&now, &all, sizeof now) != 0) atomic_fetch_add(&mask_changed, 1);
    atomic_fetch_add(&nap_rounds, 1);
  }
  return NULL;
}

static void start(void *(*fn)(void *), void *arg) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, arg) != 0) abort();
  pthread_detach(t);
}

/* Waits (5 s at most) until `counter' has moved on by `by'. */
static void await(atomic_long *counter, long by) {
  long from = atomic_load(counter);
  for (int i = 0; i < 5000 && atomic_load(counter) < from + by; i++) usleep(1000);
}

static void report(char *reply, size_t n) {
  /* Each counter has moved on since graft left, so what graft held back
   * had time to arrive. */
  await(&rt_received, 3);
  await(&alrm_received, 3);
  await(&tfd_reads, 3);
  await(&sleep_rounds, 2);
  await(&nap_rounds, 2);
  await(&epoll_rounds, 1);
  snprintf(reply, n,
           "epoll_eintr=%ld read_eintr=%ld tfd_eintr=%ld sleep_eintr=%ld nap_eintr=%ld "
           "rt_wrong=%ld alrm_wrong=%ld epoll_early=%ld sleep_early=%ld nap_early=%ld "
           "other=%ld mask_changed=%ld bad_calls=%ld tfd_lost=%ld rt_deficit=%ld "
           "rt_received=%ld rt_overruns=%ld alrm_received=%ld epoll_rounds=%ld calls=%ld",
           atomic_load(&epoll_eintr), atomic_load(&read_eintr), atomic_load(&tfd_eintr),
           atomic_load(&sleep_eintr), atomic_load(&nap_eintr), atomic_load(&rt_wrong),
           atomic_load(&alrm_wrong), atomic_load(&epoll_early), atomic_load(&sleep_early),
           atomic_load(&nap_early),
           atomic_load(&epoll_other) + atomic_load(&read_other) + atomic_load(&tfd_other) +
               atomic_load(&sleep_other),
           atomic_load(&mask_changed), atomic_load(&bad_calls), atomic_load(&tfd_lost),
           atomic_load(&rt_deficit), atomic_load(&rt_received),
           atomic_load(&rt_overruns), atomic_load(&alrm_received), atomic_load(&epoll_rounds),
           atomic_load(&calls));
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") == 0) {
    snprintf(reply, n, "%d", work_ptr(5));
  } else if (strcmp(cmd, "stats") == 0) {
    report(reply, n);
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_sigaction = on_rt;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGRTMIN, &sa, NULL);
  sa.sa_sigaction = on_alrm;
  sigaction(SIGALRM, &sa, NULL);
  if (pipe(idle_pipe) != 0) abort();

  /* Threads that must not take the timer signals block them: started
   * while the main thread blocks them. */
  block_timer_signals();
  static int tfd;
  tfd = timerfd_create(CLOCK_MONOTONIC, 0);
  struct itimerspec tspec = {{0, TFD_PERIOD_NS}, {0, TFD_PERIOD_NS}};
  clock_gettime(CLOCK_MONOTONIC, &tfd_start);
  timerfd_settime(tfd, 0, &tspec, NULL);
  start(timerfd_reader, &tfd);
  start(epoller, NULL);
  start(sleeper, NULL);
  start(blockall, NULL);
  sigset_t timers;
  sigemptyset(&timers);
  sigaddset(&timers, SIGRTMIN);
  sigaddset(&timers, SIGALRM);
  pthread_sigmask(SIG_UNBLOCK, &timers, NULL);
  start(worker, NULL);
  start(reader, NULL);

  timer_t timer;
  struct sigevent sev = {0};
  sev.sigev_notify = SIGEV_SIGNAL;
  sev.sigev_signo = SIGRTMIN;
  sev.sigev_value.sival_int = 4242;
  if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) abort();
  struct itimerspec rspec = {{0, RT_PERIOD_NS}, {0, RT_PERIOD_NS}};
  clock_gettime(CLOCK_MONOTONIC, &rt_start);
  timer_settime(timer, 0, &rspec, NULL);
  struct itimerval alrm = {{0, ALRM_PERIOD_US}, {0, ALRM_PERIOD_US}};
  setitimer(ITIMER_REAL, &alrm, NULL);

  watch("work", (const void *)work);
  serve(handle);
  return 0;
}
