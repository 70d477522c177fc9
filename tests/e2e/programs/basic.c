/* basic.c: the target of most end-to-end tests (built PIE and -no-pie).
 *
 *   compute(x)    helper(x) + 1: 7 for the input 3. A worker thread calls it
 *                 in a loop; patches replace it (and count their calls in
 *                 `counter', so the count includes the worker's calls).
 *   wait_here(x)  reads one byte from an internal pipe, then returns x + 3: a
 *                 thread can be kept inside it as long as a test wants.
 *   spin_here(x)  spins (no call, no system call) until "unspin".
 *   tiny()        3 bytes of assembly: too short for a jump.
 *
 * Commands (see serve.h):
 *   call      "compute(input) counter"            e.g. "7 0"
 *   loops     calls made so far by the worker thread
 *   block     starts a thread and waits until it is blocked inside
 *             wait_here; answers that thread's id
 *   release   lets the blocked thread leave; answers what wait_here returned
 *   probe     wait_here(10) in the main thread (the byte is sent first): "13"
 *   spin [N]  starts a thread spinning inside spin_here, at nice N (default
 *             0); answers its id
 *   unspin    stops it; answers what spin_here returned
 *   tiny      tiny()
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "serve.h"

int counter;             /* patches update it */
volatile int input = 3;  /* volatile: calls are never hoisted out of loops */

__attribute__((noinline)) static int helper(int x) { return x * 2; }

__attribute__((noinline)) int compute(int x) { return helper(x) + 1; }

static int block_pipe[2];
static atomic_int inside;

__attribute__((noinline)) int wait_here(int x) {
  char c;
  atomic_store(&inside, 1);
  if (read(block_pipe[0], &c, 1) != 1) return -1;
  atomic_store(&inside, 0);
  return x + input;
}

static atomic_int spin_stop, spinning;

__attribute__((noinline)) int spin_here(int x) {
  atomic_store(&spinning, 1);
  while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) (void)input;
  atomic_store(&spinning, 0);
  return x;
}

__asm__(".text\n"
        ".globl tiny\n"
        ".type tiny, @function\n"
        "tiny:\n"
        "\txorl %eax, %eax\n"
        "\tret\n"
        ".size tiny, .-tiny\n");
int tiny(void);

static atomic_long loops;
volatile int sink;  /* results are used: compute() is pure, unused calls vanish */

static void *worker(void *arg) {
  (void)arg;
  setpriority(PRIO_PROCESS, (id_t)serve_gettid(), 19); /* spins; stay polite */
  for (;;) {
    sink = compute(input);
    for (volatile int i = 0; i < 100; i++) {
    }
    atomic_fetch_add(&loops, 1);
  }
  return NULL;
}

static pthread_t blocked;
static atomic_int blocked_tid;
static int blocked_result;

static void *blocker(void *arg) {
  (void)arg;
  atomic_store(&blocked_tid, serve_gettid());
  blocked_result = wait_here(1);
  return NULL;
}

int (*volatile spin_here_ptr)(int) = spin_here;
static pthread_t spinner;
static atomic_int spinner_tid;
static int spinner_result;

static void *spin_thread(void *arg) {
  atomic_store(&spinner_tid, serve_gettid());
  setpriority(PRIO_PROCESS, (id_t)serve_gettid(), (int)(long)arg);
  spinner_result = spin_here_ptr(1); /* a pointer: see compute_ptr */
  return NULL;
}

/* The command loop calls compute() through a pointer: GCC then assumes that
 * the call clobbers every call-clobbered register, as the ABI says, and does
 * not keep values in them across the call on the strength of what it knows
 * of compute() (-fipa-ra), which a replacement built separately need not
 * honour (see ipa_ra_contract.sh). The worker thread calls it directly. */
int (*volatile compute_ptr)(int) = compute;

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") == 0) {
    int r = compute_ptr(input);
    snprintf(reply, n, "%d %d", r, counter);
  } else if (strcmp(cmd, "loops") == 0) {
    snprintf(reply, n, "%ld", atomic_load(&loops));
  } else if (strcmp(cmd, "block") == 0) {
    atomic_store(&inside, 0);
    pthread_create(&blocked, NULL, blocker, NULL);
    for (int i = 0; i < 5000 && !atomic_load(&inside); i++) usleep(1000);
    snprintf(reply, n, "%d", atomic_load(&inside) ? atomic_load(&blocked_tid) : -1);
  } else if (strcmp(cmd, "release") == 0) {
    if (write(block_pipe[1], "x", 1) != 1) abort();
    pthread_join(blocked, NULL);
    snprintf(reply, n, "%d", blocked_result);
  } else if (strcmp(cmd, "probe") == 0) {
    if (write(block_pipe[1], "x", 1) != 1) abort();
    snprintf(reply, n, "%d", wait_here(10));
  } else if (strcmp(cmd, "spin") == 0 || strncmp(cmd, "spin ", 5) == 0) {
    long nice = cmd[4] ? atol(cmd + 5) : 0;
    atomic_store(&spin_stop, 0);
    atomic_store(&spinning, 0);
    pthread_create(&spinner, NULL, spin_thread, (void *)nice);
    for (int i = 0; i < 5000 && !atomic_load(&spinning); i++) usleep(1000);
    snprintf(reply, n, "%d", atomic_load(&spinning) ? atomic_load(&spinner_tid) : -1);
  } else if (strcmp(cmd, "unspin") == 0) {
    atomic_store(&spin_stop, 1);
    pthread_join(spinner, NULL);
    snprintf(reply, n, "%d", spinner_result);
  } else if (strcmp(cmd, "tiny") == 0) {
    snprintf(reply, n, "%d", tiny());
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  if (pipe(block_pipe) != 0) return 1;
  watch("compute", (const void *)compute);
  watch("wait_here", (const void *)wait_here);
  watch("spin_here", (const void *)spin_here);
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  serve(handle);
  return 0;
}
