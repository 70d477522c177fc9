/* sharedtls.c: a process with a thread that shares the main thread's TLS
 * (a raw clone() without CLONE_SETTLS, as some runtimes do), which the
 * per-thread models cannot tell apart from the main thread (model_shared_tls.sh).
 *
 * The clone()d thread sleeps in a loop through raw system calls (it has no
 * TLS of its own: no libc call that touches TLS). work(x) is 3x+1.
 *
 * Commands (see serve.h):
 *   call     the main thread calls work(5): 16 (17 with the test's patch)
 *   twin     the id of the thread that shares the TLS (0 until it runs)
 */
#define _GNU_SOURCE
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "serve.h"

__attribute__((noinline)) int work(int x) { return 3 * x + 1; }

static atomic_int twin_tid;

static int twin(void *arg) {
  (void)arg;
  atomic_store(&twin_tid, (int)syscall(SYS_gettid));
  struct timespec d = {0, 50 * 1000 * 1000};
  for (;;) syscall(SYS_nanosleep, &d, NULL);
  return 0;
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") == 0) {
    int (*volatile fn)(int) = work;
    snprintf(reply, n, "%d", fn(5));
  } else if (strcmp(cmd, "twin") == 0) {
    snprintf(reply, n, "%d", atomic_load(&twin_tid));
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  watch("work", (const void *)work);
  size_t size = 256 * 1024;
  char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return 1;
  int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
  if (clone(twin, stack + size, flags, NULL) < 0) return 1;
  serve(handle);
  return 0;
}
