/* crunch.c: threads that run inside a replaced function nearly all the
 * time, for the stop model's return trap (stop_returns.sh).
 *
 * crunch(us) spins for `us` microseconds without a system call (the vDSO's
 * clock, read by a function of its own: a stop mostly finds a cruncher
 * there, crunch() one frame up) and returns 1 (the patch: 2). Each cruncher
 * calls crunch(3000) in a loop and is outside it for a few instructions
 * between calls: a stop nearly always finds it inside.
 *
 * Commands (see serve.h):
 *   start N   starts N crunchers; answers how many
 *   stats     "calls C old O new N bad B"
 *   call      crunch(0) on the main thread: 1 old, 2 new
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "serve.h"

static atomic_long calls, old_results, new_results, bad_results;

__attribute__((noinline)) static long long now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

__attribute__((noinline)) int crunch(int us) {
  long long until = now_us() + us;
  while (now_us() < until) {
  }
  return 1;
}

static void *cruncher(void *arg) {
  (void)arg;
  for (;;) {
    int r = crunch(3000);
    atomic_fetch_add(&calls, 1);
    if (r == 1)
      atomic_fetch_add(&old_results, 1);
    else if (r == 2)
      atomic_fetch_add(&new_results, 1);
    else
      atomic_fetch_add(&bad_results, 1);
  }
  return NULL;
}

static int handle(const char *cmd, char *reply, size_t n) {
  int k;
  if (sscanf(cmd, "start %d", &k) == 1) {
    int started = 0;
    for (int i = 0; i < k; i++) {
      pthread_t t;
      if (pthread_create(&t, NULL, cruncher, NULL) == 0) started++;
    }
    snprintf(reply, n, "%d", started);
  } else if (strcmp(cmd, "stats") == 0) {
    snprintf(reply, n, "calls %ld old %ld new %ld bad %ld", atomic_load(&calls), atomic_load(&old_results),
             atomic_load(&new_results), atomic_load(&bad_results));
  } else if (strcmp(cmd, "call") == 0) {
    snprintf(reply, n, "%d", crunch(0));
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  watch("crunch", (const void *)crunch);
  serve(handle);
  return 0;
}
