/* soak_target.c: the target of the kill soak test (kill_soak.py).
 *
 * Four workers call alpha(), beta() and gamma() in a loop; a fifth thread
 * holds known values in ymm8 and r12/r13 through long loops without calls
 * and counts any change (it is the thread graft borrows for its system
 * calls most often: the first busy one). The patch of the test makes the
 * three functions return 101, 102, 103 instead of 1, 2, 3.
 *
 * Commands (see ../e2e/programs/serve.h):
 *   state    "old old old", "new new new", or a mix (a half-applied patch)
 *   bad      calls that returned neither value, plus register corruptions
 *   threads  how many of the five threads still run
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "serve.h"

#define NWORKERS 4

/* SOAK_NAPS=1: every thread sleeps 1 ms now and then (a system call with
 * a clean stack), the only moments the lazy model moves a thread. (With
 * 100 us naps, five spinning threads on two cores were found blocked in
 * about one look in ten, and a lazy apply took up to 9 s.) */
static int naps;

volatile int input = 1;
static atomic_long bad, alive;

__attribute__((noinline)) int alpha(int x) {
  for (volatile int i = 0; i < 20; i++) {
  }
  return x;
}
__attribute__((noinline)) int beta(int x) {
  for (volatile int i = 0; i < 20; i++) {
  }
  return x + 1;
}
__attribute__((noinline)) int gamma_(int x) {
  for (volatile int i = 0; i < 20; i++) {
  }
  return x + 2;
}

/* Replaced only by the cumulative patch of `kill_soak.py --cumulative',
 * which puts the other three back to their original code. */
__attribute__((noinline)) int delta(int x) {
  for (volatile int i = 0; i < 20; i++) {
  }
  return x + 3;
}

static void *worker(void *arg) {
  (void)arg;
  unsigned long rounds = 0;
  atomic_fetch_add(&alive, 1);
  setpriority(PRIO_PROCESS, (id_t)serve_gettid(), 19);
  for (;;) {
    int a = alpha(input), b = beta(input), c = gamma_(input), d = delta(input);
    if ((a != 1 && a != 101) || (b != 2 && b != 102) || (c != 3 && c != 103) || (d != 4 && d != 104))
      atomic_fetch_add(&bad, 1);
    /* Most of the time outside the patched functions, as in a real
     * program: the stop model needs moments when none is running them. */
    for (volatile int i = 0; i < 300; i++) {
    }
    if (naps && ++rounds % 64 == 0) usleep(1000);
  }
  return NULL;
}

static void *register_keeper(void *arg) {
  (void)arg;
  static const uint64_t pattern[4] = {0x0123456789abcdefull, 0xfedcba9876543210ull,
                                      0x1111222233334444ull, 0x5555666677778888ull};
  atomic_fetch_add(&alive, 1);
  setpriority(PRIO_PROCESS, (id_t)serve_gettid(), 19);
  if (!__builtin_cpu_supports("avx2")) for (;;) pause();
  for (;;) {
    long errors;
    __asm__ volatile(
        "vmovdqu (%[p]), %%ymm8\n\t"
        "movabs $0x1122334455667788, %%r12\n\t"
        "mov %%r12, %%r13\n\t"
        "mov $2000000, %%ecx\n\t"
        "xor %[e], %[e]\n"
        "1:\n\t"
        "vpcmpeqq (%[p]), %%ymm8, %%ymm9\n\t"
        "vpmovmskb %%ymm9, %%eax\n\t"
        "cmp $-1, %%eax\n\t"
        "je 2f\n\t"
        "inc %[e]\n"
        "2:\n\t"
        "cmp %%r12, %%r13\n\t"
        "je 3f\n\t"
        "inc %[e]\n"
        "3:\n\t"
        "dec %%ecx\n\t"
        "jnz 1b\n\t"
        "vzeroupper\n\t"
        : [e] "=&r"(errors)
        : [p] "r"(pattern)
        : "rax", "rcx", "r12", "r13", "xmm8", "xmm9", "cc", "memory");
    if (errors) atomic_fetch_add(&bad, errors);
    if (naps) usleep(1000);
  }
  return NULL;
}

static const char *version(int got, int old_value) { return got == old_value ? "old" : got == old_value + 100 ? "new" : "bad"; }

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "state") == 0)
    snprintf(reply, n, "%s %s %s", version(alpha(1), 1), version(beta(1), 2), version(gamma_(1), 3));
  else if (strcmp(cmd, "bad") == 0)
    snprintf(reply, n, "%ld", atomic_load(&bad));
  else if (strcmp(cmd, "threads") == 0)
    snprintf(reply, n, "%ld", atomic_load(&alive));
  else
    return 0;
  return 1;
}

int main(void) {
  pthread_t t;
  naps = getenv("SOAK_NAPS") != NULL;
  pthread_create(&t, NULL, register_keeper, NULL);
  for (int i = 0; i < NWORKERS; i++) pthread_create(&t, NULL, worker, NULL);
  serve(handle);
  return 0;
}
