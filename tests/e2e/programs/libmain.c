/* libmain.c: uses libfoo.so; a worker thread calls foo_compute() in a loop.
 * Commands (see serve.h):
 *   call    "foo_compute(input) foo_calls"   e.g. "7 0"
 */
#include <pthread.h>

#include "serve.h"

int foo_compute(int x);
int foo_calls_now(void);

volatile int input = 3;

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    foo_compute(input);
    usleep(100);
  }
  return NULL;
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") != 0) return 0;
  int r = foo_compute(input);
  snprintf(reply, n, "%d %d", r, foo_calls_now());
  return 1;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  serve(handle);
  return 0;
}
