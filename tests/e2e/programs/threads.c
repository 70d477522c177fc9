/* threads.c: 8 threads call compute() in a tight loop, with other work
 * between the calls so that they are sometimes inside it and sometimes not.
 *
 * compute(3) is 7 before the patch and 600 with it (the patch of
 * multithread_apply_revert.sh). Every call is classified: old (7), new (600)
 * or bad (anything else), and counted per thread under the epoch the thread
 * read just before the call started. The test bumps the epoch ("mark") after
 * graft returns, so the calls counted under that epoch all started after the
 * apply (or revert) had finished.
 *
 * The workers run at nice 19 so that the machine stays responsive.
 *
 * Built with -fno-ipa-ra, as graft's guide advises for programs meant to be
 * patched: at -O2 the worker loop keeps values in call-clobbered registers
 * across compute() (GCC knows it only changes eax) and graft build rightly
 * refuses a replacement that calls anything (see ipa_ra_contract.sh).
 *
 * Commands (see serve.h):
 *   mark     starts a new epoch; answers its number E
 *   stats E  waits (15 s at most) until every thread made 2000 calls started
 *            in epoch E; answers "old=N new=N bad=N min=N" for epoch E
 *   bad      "bad" results over the whole run
 *   threads  how many worker threads are still calling
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "serve.h"

#define NTHREADS 8
#define MAX_EPOCHS 64
#define OLD_VALUE 7
#define NEW_VALUE 600

int counter;
volatile int input = 3;

/* Some work inside compute() too (a fifth of the loop or so), so that a stop
 * often finds threads inside it and graft has to retry. */
__attribute__((noinline)) static int helper(int x) {
  for (volatile int i = 0; i < 8; i++) {
  }
  return x * 2;
}

__attribute__((noinline)) int compute(int x) { return helper(x) + 1; }

static atomic_int epoch;
static atomic_long total_bad;
static atomic_int running;

struct counts {
  atomic_long old_, new_, bad;
};
static struct counts per_thread[NTHREADS][MAX_EPOCHS];

static void *worker(void *arg) {
  struct counts *mine = per_thread[(long)arg];
  atomic_fetch_add(&running, 1);
  /* Lowest priority: the workers spin, but the test, graft and the main
   * thread (which answers the test) still get the CPU at once. */
  setpriority(PRIO_PROCESS, (id_t)serve_gettid(), 19);
  for (unsigned long n = 0;; n++) {
    int e = atomic_load_explicit(&epoch, memory_order_acquire);
    int r = compute(input);
    struct counts *c = &mine[e % MAX_EPOCHS];
    if (r == OLD_VALUE) {
      atomic_fetch_add_explicit(&c->old_, 1, memory_order_relaxed);
    } else if (r == NEW_VALUE) {
      atomic_fetch_add_explicit(&c->new_, 1, memory_order_relaxed);
    } else {
      atomic_fetch_add_explicit(&c->bad, 1, memory_order_relaxed);
      atomic_fetch_add(&total_bad, 1);
    }
    /* Other work, outside compute(). */
    for (volatile int i = 0; i < (int)(n % 64); i++) {
    }
    if (n % 4096 == 0) sched_yield();
  }
  return NULL;
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "mark") == 0) {
    int e = atomic_load(&epoch) + 1;
    if (e >= MAX_EPOCHS) abort();
    atomic_store_explicit(&epoch, e, memory_order_release);
    snprintf(reply, n, "%d", e);
  } else if (strncmp(cmd, "stats ", 6) == 0) {
    int e = atoi(cmd + 6);
    if (e < 0 || e >= MAX_EPOCHS) abort();
    long old_ = 0, new_ = 0, bad = 0, min = 0;
    for (int tries = 0; tries < 1500; tries++) {
      old_ = new_ = bad = 0;
      min = -1;
      for (int t = 0; t < NTHREADS; t++) {
        struct counts *c = &per_thread[t][e];
        long o = atomic_load(&c->old_), w = atomic_load(&c->new_), b = atomic_load(&c->bad);
        old_ += o, new_ += w, bad += b;
        if (min < 0 || o + w + b < min) min = o + w + b;
      }
      if (min >= 2000) break;
      usleep(10000);
    }
    snprintf(reply, n, "old=%ld new=%ld bad=%ld min=%ld", old_, new_, bad, min);
  } else if (strcmp(cmd, "bad") == 0) {
    snprintf(reply, n, "%ld", atomic_load(&total_bad));
  } else if (strcmp(cmd, "threads") == 0) {
    snprintf(reply, n, "%d", atomic_load(&running));
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  watch("compute", (const void *)compute);
  pthread_t t[NTHREADS];
  for (long i = 0; i < NTHREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  serve(handle);
  return 0;
}
