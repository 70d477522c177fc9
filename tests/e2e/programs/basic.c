/* basic.c: the target of most end-to-end tests (built PIE and -no-pie).
 *
 *   compute(x)    helper(x) + 1: 7 for the input 3. A worker thread calls it
 *                 in a loop; patches replace it.
 *   wait_here(x)  reads one byte from an internal pipe, then returns x + 3: a
 *                 thread can be kept inside it as long as a test wants.
 *   tiny()        3 bytes of assembly: too short for a jump.
 *
 * Commands (see serve.h):
 *   call      "compute(input) counter"            e.g. "7 0"
 *   loops     calls made so far by the worker thread
 *   block     starts a thread and waits until it is blocked inside
 *             wait_here; answers that thread's id
 *   release   lets the blocked thread leave; answers what wait_here returned
 *   probe     wait_here(10) in the main thread (the byte is sent first): "13"
 *   tiny      tiny()
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

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

__asm__(".text\n"
        ".globl tiny\n"
        ".type tiny, @function\n"
        "tiny:\n"
        "\txorl %eax, %eax\n"
        "\tret\n"
        ".size tiny, .-tiny\n");
int tiny(void);

static atomic_long loops;

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    compute(input);
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

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") == 0) {
    int r = compute(input);
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
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  serve(handle);
  return 0;
}
