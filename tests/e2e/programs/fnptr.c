/* fnptr.c: scale() is static and never called directly, only through a
 * function pointer (an operation table read at run time).
 * Commands (see serve.h):
 *   call    "ops[0](input) ops[1](input)": "27 -3" for the input 3
 */
#include <pthread.h>

#include "serve.h"

volatile int input = 3;

__attribute__((noinline)) static int scale(int x) { return x * x * 3; }
__attribute__((noinline)) static int negate(int x) { return -x; }

int (*volatile ops[])(int) = {scale, negate};
volatile int which = 0;

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    ops[which](input);
    usleep(200);
  }
  return NULL;
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") != 0) return 0;
  snprintf(reply, n, "%d %d", ops[0](input), ops[1](input));
  return 1;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  serve(handle);
  return 0;
}
