/* gatebusy.c: busy callers of a tiny function, for model_hybrid_gates.sh.
 *
 * N workers (argv[1], default 24, nice 19) call leaf(a, b, c, d) through a
 * pointer in a tight loop with nothing else to do, so that during a
 * per-thread transition a stopped worker is most often inside leaf()'s gate
 * (which saves rax, rcx and rdx, two of them argument registers here) and
 * graft must take it back to the entry to move it. leaf() is
 * a+3b+5c+7d+1 originally and a+3b+5c+7d+2 with the patch; each call is
 * checked against both with arguments that change at every call, and
 * counted old / new / bad under the epoch read just before it (threads.c).
 *
 * Commands (see serve.h):
 *   mark     starts a new epoch; answers its number E
 *   stats E  waits (15 s at most) until every worker made 2000 calls
 *            started in epoch E; answers "old=N new=N bad=N min=N"
 *   threads  workers running
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "serve.h"

#define MAX_THREADS 256
#define MAX_EPOCHS 64

__attribute__((noinline)) int leaf(int a, int b, int c, int d) { return a + 3 * b + 5 * c + 7 * d + 1; }

static int (*volatile call_leaf)(int, int, int, int) = leaf;
static int nthreads = 24;
static atomic_int epoch;
static atomic_int running;

struct counts {
  atomic_long old_, new_, bad;
  char pad[64 - 3 * sizeof(atomic_long)];
};
static struct counts per_thread[MAX_THREADS][MAX_EPOCHS];

static void *worker(void *arg) {
  struct counts *mine = per_thread[(long)arg];
  setpriority(PRIO_PROCESS, (id_t)serve_gettid(), 19);
  atomic_fetch_add(&running, 1);
  for (int n = 0;; n = (n + 1) & 0xfff) {
    int e = atomic_load_explicit(&epoch, memory_order_relaxed);
    int a = n, b = n >> 1, c = n >> 2, d = n >> 3;
    int r = call_leaf(a, b, c, d), base = a + 3 * b + 5 * c + 7 * d;
    struct counts *k = &mine[e % MAX_EPOCHS];
    if (r == base + 1)
      atomic_fetch_add_explicit(&k->old_, 1, memory_order_relaxed);
    else if (r == base + 2)
      atomic_fetch_add_explicit(&k->new_, 1, memory_order_relaxed);
    else
      atomic_fetch_add_explicit(&k->bad, 1, memory_order_relaxed);
  }
  return NULL;
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "mark") == 0) {
    int e = atomic_load(&epoch) + 1;
    if (e >= MAX_EPOCHS) abort();
    atomic_store(&epoch, e);
    snprintf(reply, n, "%d", e);
  } else if (strncmp(cmd, "stats ", 6) == 0) {
    int e = atoi(cmd + 6);
    if (e < 0 || e >= MAX_EPOCHS) abort();
    long old_ = 0, new_ = 0, bad = 0, min = 0;
    for (int tries = 0; tries < 1500; tries++) {
      old_ = new_ = bad = 0;
      min = -1;
      for (int t = 0; t < nthreads; t++) {
        struct counts *c = &per_thread[t][e];
        long o = atomic_load(&c->old_), w = atomic_load(&c->new_), b = atomic_load(&c->bad);
        old_ += o, new_ += w, bad += b;
        if (min < 0 || o + w + b < min) min = o + w + b;
      }
      if (min >= 2000) break;
      usleep(10000);
    }
    snprintf(reply, n, "old=%ld new=%ld bad=%ld min=%ld", old_, new_, bad, min);
  } else if (strcmp(cmd, "threads") == 0) {
    snprintf(reply, n, "%d", atomic_load(&running));
  } else {
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  if (argc > 1) nthreads = atoi(argv[1]);
  if (nthreads < 1 || nthreads > MAX_THREADS) return 2;
  watch("leaf", (const void *)leaf);
  for (long i = 0; i < nthreads; i++) {
    pthread_t t;
    pthread_create(&t, NULL, worker, (void *)i);
  }
  serve(handle);
  return 0;
}
