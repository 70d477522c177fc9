/* bench/target.c: the process the stop-model benchmark patches.
 *
 *   target WORKERS idle|busy|tick [HEARTBEAT_SLEEP_US]
 *
 * Threads of the process: the main thread (control, see below), one
 * heartbeat thread and WORKERS worker threads, so WORKERS + 2 in all.
 *
 * Workers:
 *   idle  every worker is blocked in the kernel most of the time, rotating
 *         over three kinds of wait: a nanosleep(100 ms) loop, a 100 ms
 *         pthread_cond_timedwait loop and a read() on a pipe nobody writes.
 *         The sleeping kinds call bench_work() once per wake-up.
 *   busy  every worker spins calling bench_work() and bumping a counter.
 *   tick  every worker calls bench_work() once per millisecond (a 1 ms
 *         nanosleep between calls): the function is hot, yet its callers
 *         are almost always blocked (bench/side_by_side.py).
 *
 * bench_work() is the function the benchmark's patch (bench/patch.c)
 * replaces. The original returns 3x+1, the patch 3x+2; callers classify
 * every result, so the driver can check that the patch really is live.
 *
 * Heartbeat: a loop reading CLOCK_MONOTONIC, keeping the longest gap between
 * two consecutive reads since the last reset. With HEARTBEAT_SLEEP_US = 0 it
 * spins; otherwise it sleeps that long between reads (default 100 us), which
 * is how a latency-sensitive thread (one that mostly waits, then must answer)
 * behaves, and keeps the measurement meaningful when busy workers outnumber
 * the cores (a spinning heartbeat would then mostly measure the scheduler's
 * time slices).
 *
 * Control: the main thread reads commands, one per line, on stdin and
 * answers each with one line on stdout:
 *   reset  -> "ok"                 start a new gap window (also zeroes counters)
 *   stat   -> "gap_us=G max_gap_at_us=T window_us=W beats=B orig=O patched=P errors=E
 *             max_gap_end_mono_us=M" (M: when the longest gap ended, CLOCK_MONOTONIC)
 *   calltime N -> "ns=X patched=P"  the main thread calls bench_work() N times
 *                  (through a pointer, as any caller) and gives the mean time per
 *                  call and how many answered as patched: the cost of whatever
 *                  the entry does (direct, a graft gate during a transition...)
 *   quit   -> "bye", exits (so does EOF on stdin)
 * Both commands are handed to the heartbeat thread and answered only after it
 * has acknowledged them, i.e. after it has read the clock again: so a gap still
 * open when "stat" arrives (the heartbeat not yet rescheduled after a pause)
 * is closed and counted before the answer.
 *
 * Once every thread runs, the main thread prints one line
 *   "ready pid=PID threads=N workers=W mode=MODE heartbeat_sleep_us=S"
 * and then serves commands.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The function to patch. noipa: no inlining, cloning or interprocedural
 * constant propagation, so every call really goes through this symbol. */
__attribute__((noipa)) int bench_work(int x) {
  /* A few instructions more than the bare 3x+1, so that the function is
   * larger than any entry jump a patcher may write; h is always 0 for the
   * x in [0, 0xffff] the workers pass, but the compiler cannot know it. */
  unsigned h = (unsigned)x ^ ((unsigned)x >> 7);
  h = (h * 0x9e3779b1u) >> 28;
  return 3 * x + 1 + (int)(h & ((unsigned)x >> 20));
}

enum { MODE_IDLE, MODE_BUSY, MODE_TICK };

/* Per-worker counters, one cache line each so busy workers do not share. */
struct worker {
  _Alignas(64) atomic_uint_fast64_t orig;
  atomic_uint_fast64_t patched;
  atomic_uint_fast64_t errors;
  int index;
  int mode;
};

static struct worker *workers;
static int nworkers;
static atomic_int started;

/* Heartbeat command mailbox: the control thread posts (cmd, seq); the
 * heartbeat answers by storing results then ack = seq. */
enum { CMD_NONE, CMD_RESET, CMD_STAT };
static atomic_int cmd;
static atomic_uint_fast64_t cmd_seq, ack_seq;
static uint64_t res_gap_ns, res_gap_at_ns, res_window_ns, res_beats, res_start_ns;
static long heartbeat_sleep_us = 100;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void classify(struct worker *w, int x, int r) {
  if (r == 3 * x + 1)
    atomic_fetch_add_explicit(&w->orig, 1, memory_order_relaxed);
  else if (r == 3 * x + 2)
    atomic_fetch_add_explicit(&w->patched, 1, memory_order_relaxed);
  else
    atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  atomic_fetch_add(&started, 1);
  if (w->mode == MODE_BUSY) {
    volatile uint64_t spins = 0;
    for (int x = w->index;; x = (x + 1) & 0xffff) {
      classify(w, x, bench_work(x));
      spins++;
    }
  }
  if (w->mode == MODE_TICK) {
    for (int x = w->index;; x = (x + 1) & 0xffff) {
      struct timespec d = {0, 1000 * 1000};
      while (nanosleep(&d, &d) != 0)
        if (errno != EINTR) {
          atomic_fetch_add(&w->errors, 1);
          break;
        }
      classify(w, x, bench_work(x));
    }
  }
  switch (w->index % 3) {
  case 0: /* nanosleep loop */
    for (int x = 0;; x = (x + 1) & 0xffff) {
      struct timespec d = {0, 100 * 1000 * 1000};
      while (nanosleep(&d, &d) != 0)
        if (errno != EINTR) {
          atomic_fetch_add(&w->errors, 1);
          break;
        }
      classify(w, x, bench_work(x));
    }
  case 1: { /* condition variable, 100 ms timed waits, never signalled */
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c, &ca);
    pthread_mutex_lock(&m);
    for (int x = 0;; x = (x + 1) & 0xffff) {
      struct timespec t;
      clock_gettime(CLOCK_MONOTONIC, &t);
      t.tv_nsec += 100 * 1000 * 1000;
      if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
      }
      int rc;
      do
        rc = pthread_cond_timedwait(&c, &m, &t);
      while (rc == 0); /* spurious wake-up: wait again */
      if (rc != ETIMEDOUT)
        atomic_fetch_add(&w->errors, 1);
      classify(w, x, bench_work(x));
    }
  }
  default: { /* read on a pipe that is never written: blocked for good */
    int p[2];
    if (pipe(p) != 0) {
      atomic_fetch_add(&w->errors, 1);
      for (;;)
        pause();
    }
    for (;;) {
      char b;
      /* A tracer that stops and resumes the thread must restart the read
       * transparently: any return from it (EINTR included) is an error. */
      (void)read(p[0], &b, 1);
      atomic_fetch_add(&w->errors, 1);
    }
  }
  }
  return NULL;
}

static void *heartbeat_main(void *arg) {
  (void)arg;
  uint64_t seen = 0, max_gap = 0, max_at = 0, beats = 0;
  uint64_t start = mono_ns(), last = start;
  struct timespec d = {0, heartbeat_sleep_us * 1000};
  atomic_fetch_add(&started, 1);
  for (;;) {
    if (heartbeat_sleep_us > 0)
      nanosleep(&d, NULL);
    uint64_t now = mono_ns();
    uint64_t gap = now - last;
    last = now;
    beats++;
    if (gap > max_gap) {
      max_gap = gap;
      max_at = now - start;
    }
    uint64_t s = atomic_load_explicit(&cmd_seq, memory_order_acquire);
    if (s != seen) {
      seen = s;
      if (atomic_load_explicit(&cmd, memory_order_relaxed) == CMD_RESET) {
        max_gap = max_at = beats = 0;
        start = last = mono_ns();
      } else {
        res_gap_ns = max_gap;
        res_gap_at_ns = max_at;
        res_start_ns = start;
        res_window_ns = now - start;
        res_beats = beats;
      }
      atomic_store_explicit(&ack_seq, s, memory_order_release);
    }
  }
  return NULL;
}

/* Post a command to the heartbeat and wait for its acknowledgement. */
static void heartbeat_call(int c) {
  atomic_store_explicit(&cmd, c, memory_order_relaxed);
  uint64_t s = atomic_load(&cmd_seq) + 1;
  atomic_store_explicit(&cmd_seq, s, memory_order_release);
  while (atomic_load_explicit(&ack_seq, memory_order_acquire) != s) {
    struct timespec d = {0, 20 * 1000};
    nanosleep(&d, NULL);
  }
}

static void usage(void) {
  fprintf(stderr, "usage: target WORKERS idle|busy|tick [HEARTBEAT_SLEEP_US]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4)
    usage();
  char *end;
  long n = strtol(argv[1], &end, 10);
  if (*end || n < 0 || n > 4096)
    usage();
  nworkers = (int)n;
  int mode;
  if (!strcmp(argv[2], "idle"))
    mode = MODE_IDLE;
  else if (!strcmp(argv[2], "busy"))
    mode = MODE_BUSY;
  else if (!strcmp(argv[2], "tick"))
    mode = MODE_TICK;
  else
    usage();
  if (argc == 4) {
    heartbeat_sleep_us = strtol(argv[3], &end, 10);
    if (*end || heartbeat_sleep_us < 0 || heartbeat_sleep_us >= 1000000)
      usage();
  }
  setvbuf(stdout, NULL, _IOLBF, 0);

  workers = aligned_alloc(64, sizeof *workers * (size_t)(nworkers ? nworkers : 1));
  if (!workers)
    return 1;
  memset(workers, 0, sizeof *workers * (size_t)(nworkers ? nworkers : 1));
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t t;
  if (pthread_create(&t, &attr, heartbeat_main, NULL) != 0) {
    perror("pthread_create");
    return 1;
  }
  for (int i = 0; i < nworkers; i++) {
    workers[i].index = i;
    workers[i].mode = mode;
    if (pthread_create(&t, &attr, worker_main, &workers[i]) != 0) {
      perror("pthread_create");
      return 1;
    }
  }
  while (atomic_load(&started) != nworkers + 1) {
    struct timespec d = {0, 1000 * 1000};
    nanosleep(&d, NULL);
  }
  heartbeat_call(CMD_RESET);
  printf("ready pid=%d threads=%d workers=%d mode=%s heartbeat_sleep_us=%ld\n",
         (int)getpid(), nworkers + 2, nworkers, argv[2], heartbeat_sleep_us);

  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (!strncmp(line, "reset", 5)) {
      heartbeat_call(CMD_RESET);
      for (int i = 0; i < nworkers; i++) {
        atomic_store(&workers[i].orig, 0);
        atomic_store(&workers[i].patched, 0);
      }
      printf("ok\n");
    } else if (!strncmp(line, "stat", 4)) {
      heartbeat_call(CMD_STAT);
      uint64_t o = 0, p = 0, e = 0;
      for (int i = 0; i < nworkers; i++) {
        o += atomic_load_explicit(&workers[i].orig, memory_order_relaxed);
        p += atomic_load_explicit(&workers[i].patched, memory_order_relaxed);
        e += atomic_load_explicit(&workers[i].errors, memory_order_relaxed);
      }
      printf("gap_us=%" PRIu64 " max_gap_at_us=%" PRIu64 " window_us=%" PRIu64
             " beats=%" PRIu64 " orig=%" PRIu64 " patched=%" PRIu64
             " errors=%" PRIu64 " max_gap_end_mono_us=%" PRIu64 "\n",
             res_gap_ns / 1000, res_gap_at_ns / 1000, res_window_ns / 1000,
             res_beats, o, p, e, (res_start_ns + res_gap_at_ns) / 1000);
    } else if (!strncmp(line, "calltime ", 9)) {
      long calls = strtol(line + 9, NULL, 10);
      if (calls <= 0) calls = 1;
      int (*volatile fn)(int) = bench_work;
      uint64_t patched = 0;
      struct timespec a, b;
      clock_gettime(CLOCK_MONOTONIC, &a);
      for (long i = 0; i < calls; i++) {
        int x = (int)(i & 0xffff);
        patched += fn(x) == 3 * x + 2;
      }
      clock_gettime(CLOCK_MONOTONIC, &b);
      double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)calls;
      printf("ns=%.3f patched=%" PRIu64 "\n", ns, patched);
    } else if (!strncmp(line, "quit", 4)) {
      printf("bye\n");
      break;
    } else {
      printf("error unknown command\n");
    }
  }
  _exit(0);
}
