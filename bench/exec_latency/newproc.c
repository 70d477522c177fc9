/* A new process of the benchmark: argv[1] is CLOCK_MONOTONIC (ns) read by
 * the launcher just before it forked and executed this program. It calls
 * vulnerable() (in libvuln.so) until it returns the fixed answer, and prints
 * "patched EXEC_TO_PATCHED_NS MAIN_TO_PATCHED_NS" (or "timeout" after 3 s):
 * the time from its exec, and the time it ran the old code. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int vulnerable(void);

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
  long long launched = argc > 1 ? atoll(argv[1]) : now_ns();
  long long started = now_ns();
  int (*volatile call)(void) = vulnerable; /* through a pointer: re-read each time */
  struct timespec nap = {0, 100000};
  while (now_ns() - started < 3000000000LL) {
    if (call() < 0) {
      long long t = now_ns();
      printf("patched %lld %lld\n", t - launched, t - started);
      return 0;
    }
    nanosleep(&nap, NULL);
  }
  printf("timeout %d\n", (int)getpid());
  return 1;
}
