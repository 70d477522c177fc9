/* returns.c: threads that live inside a replaced function, for the exit
 * stubs (returns_*.sh, bench/returns.py).
 *
 * dwell(ms) sleeps ms milliseconds and returns 1 (the patch: 2). The
 * sleeper calls dwell(3000) and stays outside it 50 ms between calls,
 * spinning (never blocked in a system call there, so --model lazy cannot
 * take it outside), so a transition that waits for it to be outside must be
 * lucky; every return is timestamped (CLOCK_REALTIME, right after dwell
 * returns). dwell_jump(ms)
 * sleeps and then longjmps out of itself to its caller's setjmp (the
 * patch: the same); the jumper spins 2 ms outside it, then sleeps 50 ms.
 * Eight idle threads wait in read() all the while.
 *
 * Commands (see serve.h):
 *   sleeper        starts the sleeper; answers its tid
 *   jumper         starts the jumper; answers its tid
 *   entered N      waits (10 s at most) until dwell() was entered N times;
 *                  answers the count
 *   last           "R NS N": the last result of dwell, the time of its
 *                  return, returns so far
 *   jumps          longjmps out of dwell_jump so far
 *   call           dwell(0) on the main thread: 1 old, 2 new
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "serve.h"

atomic_int entered; /* the patch counts its calls too */
static atomic_int returns, last_result, jumps;
static atomic_llong last_return_ns;
static int idle_pipe[2];

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

__attribute__((noinline)) int dwell(int ms) {
  atomic_fetch_add(&entered, 1);
  sleep_ms(ms);
  return 1;
}

__attribute__((noinline)) void dwell_jump(int ms, jmp_buf *back) {
  sleep_ms(ms);
  longjmp(*back, 1);
}

static void *sleeper(void *arg) {
  (void)arg;
  for (;;) {
    int r = dwell(3000);
    long long t = now_ns();
    atomic_store(&last_result, r);
    atomic_store(&last_return_ns, t);
    atomic_fetch_add(&returns, 1);
    while (now_ns() < t + 50000000) {
    }
  }
  return NULL;
}

static void *jumper(void *arg) {
  (void)arg;
  for (;;) {
    jmp_buf back;
    if (setjmp(back) == 0) dwell_jump(3000, &back);
    atomic_fetch_add(&jumps, 1);
    long long until = now_ns() + 2000000;
    while (now_ns() < until) {
    }
    sleep_ms(50);
  }
  return NULL;
}

static void *idle(void *arg) {
  (void)arg;
  char c;
  while (read(idle_pipe[0], &c, 1) != 0) {
  }
  return NULL;
}

static atomic_int started_tid;
static void *starter(void *arg) {
  atomic_store(&started_tid, serve_gettid());
  return ((void *(*)(void *))arg)(NULL);
}

static int start(void *(*fn)(void *)) {
  pthread_t t;
  atomic_store(&started_tid, 0);
  pthread_create(&t, NULL, starter, (void *)fn);
  while (!atomic_load(&started_tid)) sleep_ms(1);
  return atomic_load(&started_tid);
}

static int handle(const char *cmd, char *reply, size_t n) {
  int k;
  if (strcmp(cmd, "sleeper") == 0) {
    snprintf(reply, n, "%d", start(sleeper));
  } else if (strcmp(cmd, "jumper") == 0) {
    snprintf(reply, n, "%d", start(jumper));
  } else if (sscanf(cmd, "entered %d", &k) == 1) {
    for (int i = 0; i < 10000 && atomic_load(&entered) < k; i++) sleep_ms(1);
    snprintf(reply, n, "%d", atomic_load(&entered));
  } else if (strcmp(cmd, "last") == 0) {
    snprintf(reply, n, "%d %lld %d", atomic_load(&last_result), atomic_load(&last_return_ns),
             atomic_load(&returns));
  } else if (strcmp(cmd, "jumps") == 0) {
    snprintf(reply, n, "%d", atomic_load(&jumps));
  } else if (strcmp(cmd, "call") == 0) {
    atomic_fetch_sub(&entered, 1);  /* not the sleeper's */
    snprintf(reply, n, "%d", dwell(0));
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  if (pipe(idle_pipe) != 0) return 1;
  for (int i = 0; i < 8; i++) {
    pthread_t t;
    pthread_create(&t, NULL, idle, NULL);
  }
  watch("dwell", (const void *)dwell);
  serve(handle);
  return 0;
}
