/* transition.c: a target for the per-thread models (model_*.sh).
 *
 * work(x) is the function the tests replace: 3x+1 originally, 3x+2 with
 * their patch. Every call a thread makes is classified old / new / bad and
 * counted under the epoch the thread read just before the call (as in
 * threads.c): calls counted under an epoch begun after graft returned all
 * started after it.
 *
 * Threads, each started by a command (see serve.h):
 *   load N      N workers calling work() in a tight loop (nice 19)
 *   hold        a thread enters work() and stays inside it (spinning, with
 *               sched_yield) until `release'; then it calls work() in a
 *               loop like a worker
 *   spin N      N workers calling work() in a tight loop that makes no
 *               system call at all (nice 19)
 *   syscalls N  N workers calling work() and getppid() in a tight loop
 *               (nice 19): always in or near a system call, never blocked
 *               in one (the lazy model must catch them at one)
 *   churn       a thread that keeps creating short-lived threads (each
 *               calls work() 200 times and exits); `churned' = how many
 *   sleeper     a thread blocked in read() on a pipe; `wake' makes it call
 *               work(2) once and go back to read(); `slept' = its last result
 *   quiescent   (built with -DWITH_RUNTIME) a thread calling work() then
 *               graft_quiescent() in a loop, spinning in between (never in
 *               a system call: only graft_quiescent() can move it under the
 *               lazy model); `moved' = how many
 *               of its graft_quiescent() calls returned 1
 *   qload N     (with -DWITH_RUNTIME) N workers calling work() and then
 *               graft_quiescent() in a tight loop
 * Queries:
 *   mark        starts a new epoch; answers its number E
 *   stats E     waits (15 s at most) until 2000 calls started in epoch E;
 *               answers "old=N new=N bad=N"
 *   call        the main thread calls work(5): 16 old, 17 new
 *   level       level(): 0 unpatched (a second function for patches to
 *               replace; no thread calls it but the main one)
 *   threads     threads running work() loops (workers, holder, quiescent)
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "serve.h"
#ifdef WITH_RUNTIME
#include <graft/runtime.h>
#endif

#define MAX_EPOCHS 64

volatile int holding;
volatile int hold_arrived;

__attribute__((noinline)) int work(int x) {
  if (x == 1000) {
    hold_arrived = 1;
    while (holding) sched_yield();
  }
  return 3 * x + 1;
}

static volatile int level_base; /* 0; read so that level() is long enough for a jump */
__attribute__((noinline)) int level(void) { return level_base; }
static int (*volatile level_ptr)(void) = level;

static atomic_int epoch;
static atomic_long counts[MAX_EPOCHS][3];  /* old, new, bad */
static atomic_int looping;
static atomic_long churned;
#ifdef WITH_RUNTIME
static atomic_long quiescent_moves;
#endif
static int sleeper_pipe[2];
static atomic_int slept = -1;

static int (*volatile work_ptr)(int) = work;

static void one_call(int x) {
  int e = atomic_load_explicit(&epoch, memory_order_acquire);
  int r = work_ptr(x);
  int k = r == 3 * x + 1 ? 0 : r == 3 * x + 2 ? 1 : 2;
  atomic_fetch_add_explicit(&counts[e % MAX_EPOCHS][k], 1, memory_order_relaxed);
}

/* A thread that calls work() in a loop: lowest priority, counted. */
static void begin_loop(void) {
  setpriority(PRIO_PROCESS, (id_t)serve_gettid(), 19);
  atomic_fetch_add(&looping, 1);
}

static void *worker(void *arg) {
  (void)arg;
  begin_loop();
  for (unsigned long n = 0;; n++) {
    one_call(3);
    for (volatile int i = 0; i < (int)(n % 64); i++) {
    }
    if (n % 4096 == 0) sched_yield();
  }
  return NULL;
}

static void *spinner(void *arg) {
  (void)arg;
  begin_loop();
  for (;;) one_call(3);
  return NULL;
}

static void *syscaller(void *arg) {
  (void)arg;
  begin_loop();
  for (;;) {
    one_call(3);
    getppid();
  }
  return NULL;
}

static void *holder(void *arg) {
  (void)arg;
  one_call(1000); /* counted under the epoch it started in */
  atomic_fetch_add(&looping, 1);
  for (;;) {
    one_call(4);
    usleep(100);
  }
  return NULL;
}

static void *short_lived(void *arg) {
  (void)arg;
  for (int i = 0; i < 200; i++) one_call(6);
  atomic_fetch_add(&churned, 1);
  return NULL;
}

static void *churner(void *arg) {
  (void)arg;
  for (;;) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_lived, NULL) == 0) pthread_join(t, NULL);
    usleep(500);
  }
  return NULL;
}

static void *sleeper(void *arg) {
  (void)arg;
  char c;
  while (read(sleeper_pipe[0], &c, 1) == 1) atomic_store(&slept, work_ptr(2));
  return NULL;
}

#ifdef WITH_RUNTIME
/* Never blocks in a system call (it spins between calls), so that under
 * the lazy model only graft_quiescent() can move it. */
static void *quiescent_loop(void *arg) {
  (void)arg;
  begin_loop();
  for (;;) {
    one_call(7);
    if (graft_quiescent()) atomic_fetch_add(&quiescent_moves, 1);
    for (volatile int i = 0; i < 200000; i++) {
    }
  }
  return NULL;
}

/* A worker of the lazy model under load: a tight loop of work() calls with
 * a quiescent point after each. */
static void *quiescent_worker(void *arg) {
  (void)arg;
  begin_loop();
  for (;;) {
    one_call(3);
    if (graft_quiescent()) atomic_fetch_add(&quiescent_moves, 1);
  }
  return NULL;
}
#endif

static void start(void *(*fn)(void *)) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, NULL) != 0) abort();
  pthread_detach(t);
}

/* "NAME N": N threads of `fn'. */
static int start_many(const char *cmd, const char *name, void *(*fn)(void *), char *reply, size_t n) {
  size_t len = strlen(name);
  if (strncmp(cmd, name, len) != 0 || cmd[len] != ' ') return 0;
  for (int i = 0, k = atoi(cmd + len + 1); i < k; i++) start(fn);
  snprintf(reply, n, "ok");
  return 1;
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (start_many(cmd, "load", worker, reply, n) || start_many(cmd, "spin", spinner, reply, n) ||
      start_many(cmd, "syscalls", syscaller, reply, n))
    return 1;
#ifdef WITH_RUNTIME
  if (start_many(cmd, "qload", quiescent_worker, reply, n)) return 1;
#endif
  if (strcmp(cmd, "hold") == 0) {
    holding = 1;
    hold_arrived = 0;
    start(holder);
    for (int i = 0; i < 1000 && !hold_arrived; i++) usleep(1000);
    snprintf(reply, n, hold_arrived ? "holding" : "not arrived");
  } else if (strcmp(cmd, "release") == 0) {
    holding = 0;
    snprintf(reply, n, "released");
  } else if (strcmp(cmd, "churn") == 0) {
    start(churner);
    snprintf(reply, n, "ok");
  } else if (strcmp(cmd, "churned") == 0) {
    snprintf(reply, n, "%ld", atomic_load(&churned));
  } else if (strcmp(cmd, "sleeper") == 0) {
    if (pipe(sleeper_pipe) != 0) abort();
    start(sleeper);
    snprintf(reply, n, "ok");
  } else if (strcmp(cmd, "wake") == 0) {
    atomic_store(&slept, -1);
    if (write(sleeper_pipe[1], "x", 1) != 1) abort();
    for (int i = 0; i < 2000 && atomic_load(&slept) < 0; i++) usleep(1000);
    snprintf(reply, n, "%d", atomic_load(&slept));
#ifdef WITH_RUNTIME
  } else if (strcmp(cmd, "quiescent") == 0) {
    start(quiescent_loop);
    snprintf(reply, n, "ok");
  } else if (strcmp(cmd, "moved") == 0) {
    snprintf(reply, n, "%ld", atomic_load(&quiescent_moves));
#endif
  } else if (strcmp(cmd, "mark") == 0) {
    int e = atomic_load(&epoch) + 1;
    if (e >= MAX_EPOCHS) abort();
    atomic_store_explicit(&epoch, e, memory_order_release);
    snprintf(reply, n, "%d", e);
  } else if (strncmp(cmd, "stats ", 6) == 0) {
    int e = atoi(cmd + 6);
    if (e < 0 || e >= MAX_EPOCHS) abort();
    long o = 0, w = 0, b = 0;
    for (int tries = 0; tries < 1500; tries++) {
      o = atomic_load(&counts[e][0]), w = atomic_load(&counts[e][1]), b = atomic_load(&counts[e][2]);
      if (o + w + b >= 2000) break;
      usleep(10000);
    }
    snprintf(reply, n, "old=%ld new=%ld bad=%ld", o, w, b);
  } else if (strcmp(cmd, "call") == 0) {
    snprintf(reply, n, "%d", work_ptr(5));
  } else if (strcmp(cmd, "level") == 0) {
    snprintf(reply, n, "%d", level_ptr());
  } else if (strcmp(cmd, "threads") == 0) {
    snprintf(reply, n, "%d", atomic_load(&looping));
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  watch("work", (const void *)work);
  serve(handle);
  return 0;
}
