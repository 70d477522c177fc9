/* ledger.c: the target of the tests of patches that touch data (shadow
 * variables, callbacks, cumulative patches).
 *
 * 64 accounts; 8 worker threads deposit 1 into them in turn, all the time.
 * Patches add a field to `struct account' with a shadow variable, log their
 * callbacks into `callback_log', and replace version().
 *
 * Built with -DWITH_RUNTIME and linked with libgraft-rt.so, it attaches a
 * shadow variable itself at startup (id 99 on account 0, holding 4242), so
 * a test can check that patches use the program's own runtime.
 *
 * Commands (see serve.h):
 *   pause       workers stop (between two deposits); answers "paused"
 *   resume      workers go on; answers "resumed"
 *   describe K  describe(&accounts[K]): "K BALANCE" unpatched
 *   balance K   the balance of account K
 *   total       sum of all balances
 *   version     version(): 1 unpatched
 *   log         callback_log (what the callbacks wrote), or "-"
 *   clear       empties callback_log
 *   rt          1 if the program runs with libgraft-rt linked in
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "serve.h"

#ifdef WITH_RUNTIME
#include <graft/runtime.h>
#endif

struct account {
  long balance;
  int id;
};

enum { kAccounts = 64, kWorkers = 8 };
struct account accounts[kAccounts];
char callback_log[256]; /* callbacks append "name," */

__attribute__((noinline)) void deposit(struct account *a, long amount) {
  __atomic_add_fetch(&a->balance, amount, __ATOMIC_RELAXED);
}

__attribute__((noinline)) int describe(struct account *a, char *out, size_t n) {
  return snprintf(out, n, "%d %ld", a->id, __atomic_load_n(&a->balance, __ATOMIC_RELAXED));
}

__attribute__((noinline)) int version(void) { return 1; }

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int paused, parked;

static void *worker(void *arg) {
  long t = (long)arg;
  setpriority(PRIO_PROCESS, (id_t)serve_gettid(), 10); /* spins; stay polite */
  for (unsigned long i = 0;; i++) {
    if (__atomic_load_n(&paused, __ATOMIC_ACQUIRE)) {
      pthread_mutex_lock(&gate);
      parked++;
      pthread_cond_broadcast(&gate_cond);
      while (paused) pthread_cond_wait(&gate_cond, &gate);
      parked--;
      pthread_mutex_unlock(&gate);
    }
    /* Every worker walks all accounts, each from its own start: the same
     * objects are hit by several threads at once. */
    deposit(&accounts[(i + (unsigned long)t * 8) % kAccounts], 1);
    if (i % 64 == 0) usleep(50);
  }
  return NULL;
}

/* Called through pointers: see basic.c (compute_ptr) on -fipa-ra. */
int (*volatile describe_ptr)(struct account *, char *, size_t) = describe;
int (*volatile version_ptr)(void) = version;

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "pause") == 0) {
    pthread_mutex_lock(&gate);
    __atomic_store_n(&paused, 1, __ATOMIC_RELEASE);
    while (parked < kWorkers) pthread_cond_wait(&gate_cond, &gate);
    pthread_mutex_unlock(&gate);
    snprintf(reply, n, "paused");
  } else if (strcmp(cmd, "resume") == 0) {
    pthread_mutex_lock(&gate);
    __atomic_store_n(&paused, 0, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate);
    snprintf(reply, n, "resumed");
  } else if (strncmp(cmd, "describe ", 9) == 0) {
    describe_ptr(&accounts[atoi(cmd + 9) % kAccounts], reply, n);
  } else if (strncmp(cmd, "balance ", 8) == 0) {
    snprintf(reply, n, "%ld", __atomic_load_n(&accounts[atoi(cmd + 8) % kAccounts].balance, __ATOMIC_RELAXED));
  } else if (strcmp(cmd, "total") == 0) {
    long sum = 0;
    for (int i = 0; i < kAccounts; i++) sum += __atomic_load_n(&accounts[i].balance, __ATOMIC_RELAXED);
    snprintf(reply, n, "%ld", sum);
  } else if (strcmp(cmd, "version") == 0) {
    snprintf(reply, n, "%d", version_ptr());
  } else if (strcmp(cmd, "log") == 0) {
    snprintf(reply, n, "%s", callback_log[0] ? callback_log : "-");
  } else if (strcmp(cmd, "clear") == 0) {
    callback_log[0] = 0;
    snprintf(reply, n, "-");
  } else if (strcmp(cmd, "rt") == 0) {
#ifdef WITH_RUNTIME
    snprintf(reply, n, "1");
#else
    snprintf(reply, n, "0");
#endif
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  for (int i = 0; i < kAccounts; i++) accounts[i].id = i;
#ifdef WITH_RUNTIME
  long *mine = graft_shadow_alloc(&accounts[0], 99, sizeof(long), NULL, NULL);
  if (!mine) return 1;
  *mine = 4242;
#endif
  watch("deposit", (const void *)deposit);
  for (long t = 0; t < kWorkers; t++) {
    pthread_t th;
    pthread_create(&th, NULL, worker, (void *)t);
  }
  serve(handle);
  return 0;
}
