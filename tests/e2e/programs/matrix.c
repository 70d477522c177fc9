/* matrix.c: the target that target_matrix.sh builds many ways (static,
 * musl, -fcf-protection, LTO...): functions of the shapes patches meet in
 * real programs, called by worker threads that check every result.
 *
 *   tail(x)     a tail call (jmp leaf): 3(x+1)+1; patched: + 1000000
 *   table(x)    a switch compiled to a jump table, a different formula
 *               per case; patched: + 1000000
 *   recurse(n)  Fibonacci, really recursive; patched: the same values, and
 *               each call counted in fixed_calls
 *   small(x)    x + 1, four bytes (eight with endbr64); patched: x + 2
 *
 * Commands (see serve.h):
 *   probe   "TAIL(5) TABLE(3) RECURSE(12) SMALL(5) FIXED_CALLS" from the
 *           main thread
 *   wrong   results the workers saw that no version gives
 *   loops   calls the workers made so far
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "serve.h"

#define NOINLINE __attribute__((noinline, noclone))

int fixed_calls; /* the patched recurse counts its calls here */

NOINLINE int leaf(int x) { return x * 3 + 1; }
NOINLINE int tail(int x) { return leaf(x + 1); }

static int table_0(int x) { return x * 3; }
static int table_1(int x) { return x + 7; }
static int table_2(int x) { return x ^ 5; }
static int table_3(int x) { return x - 9; }
static int table_4(int x) { return x << 2; }
static int table_5(int x) { return x >> 1; }
static int table_6(int x) { return x * x; }
static int table_7(int x) { return ~x; }
static int table_8(int x) { return x | 8; }
static int table_9(int x) { return x & 12; }
static int table_10(int x) { return 100 - x; }
static int table_11(int x) { return x * 7 + 1; }
static int table_12(int x) { return x / 3; }
static int table_13(int x) { return x % 5; }
static int table_14(int x) { return x * 11; }
static int table_15(int x) { return x + x / 2; }

NOINLINE __attribute__((no_icf)) int table(int x) {
  switch (x & 15) {
    case 0: return x * 3;
    case 1: return x + 7;
    case 2: return x ^ 5;
    case 3: return x - 9;
    case 4: return x << 2;
    case 5: return x >> 1;
    case 6: return x * x;
    case 7: return ~x;
    case 8: return x | 8;
    case 9: return x & 12;
    case 10: return 100 - x;
    case 11: return x * 7 + 1;
    case 12: return x / 3;
    case 13: return x % 5;
    case 14: return x * 11;
    default: return x + x / 2;
  }
}

/* What the original table(x) gives, computed another way. */
__attribute__((no_icf)) static int table_value(int x) {
  static int (*const f[16])(int) = {table_0,  table_1,  table_2,  table_3, table_4,  table_5,
                                     table_6,  table_7,  table_8,  table_9, table_10, table_11,
                                     table_12, table_13, table_14, table_15};
  return f[x & 15](x);
}

NOINLINE int recurse(int n) { return n < 2 ? n : recurse(n - 1) + recurse(n - 2); }

NOINLINE int small(int x) { return x + 1; }

/* Called through pointers: the callers assume the ABI's clobbers, not what
 * GCC knows of these bodies (-fipa-ra, see ipa_ra_contract.sh). */
int (*volatile tail_ptr)(int) = tail;
int (*volatile table_ptr)(int) = table;
int (*volatile recurse_ptr)(int) = recurse;
int (*volatile small_ptr)(int) = small;

static atomic_long loops, wrong;

static int fib(int n) {
  int a = 0, b = 1;
  for (int i = 0; i < n; i++) {
    int t = a + b;
    a = b;
    b = t;
  }
  return a;
}

static void *worker(void *arg) {
  setpriority(PRIO_PROCESS, (id_t)serve_gettid(), 10);
  unsigned x = (unsigned)(long)arg;
  struct timespec nap = {0, 50000};
  for (;;) {
    x = x * 1103515245u + 12345u;
    int v = (int)(x >> 16) & 1023, n = (int)(x >> 8) % 14;
    int t = tail_ptr(v), old_t = 3 * (v + 1) + 1;
    int s = table_ptr(v), old_s = table_value(v);
    int r = recurse_ptr(n);
    int m = small_ptr(v);
    if (t != old_t && t != old_t + 1000000) atomic_fetch_add(&wrong, 1);
    if (s != old_s && s != old_s + 1000000) atomic_fetch_add(&wrong, 1);
    if (r != fib(n)) atomic_fetch_add(&wrong, 1);
    if (m != v + 1 && m != v + 2) atomic_fetch_add(&wrong, 1);
    atomic_fetch_add(&loops, 1);
    nanosleep(&nap, NULL);
  }
  return NULL;
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "probe") == 0)
    snprintf(reply, n, "%d %d %d %d %d", tail_ptr(5), table_ptr(3), recurse_ptr(12), small_ptr(5),
             __atomic_load_n(&fixed_calls, __ATOMIC_RELAXED));
  else if (strcmp(cmd, "wrong") == 0)
    snprintf(reply, n, "%ld", atomic_load(&wrong));
  else if (strcmp(cmd, "loops") == 0)
    snprintf(reply, n, "%ld", atomic_load(&loops));
  else
    return 0;
  return 1;
}

int main(void) {
  for (long i = 1; i <= 3; i++) {
    pthread_t t;
    pthread_create(&t, NULL, worker, (void *)i);
  }
  serve(handle);
  return 0;
}
