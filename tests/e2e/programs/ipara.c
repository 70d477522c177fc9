/* ipara.c: caller() keeps b * c + a in call-clobbered registers across its
 * call to small(), because GCC knows small() only changes eax (-fipa-ra, on
 * by default at -O2). The example of docs/patch-authors.md.
 * Commands (see serve.h):
 *   call    caller(1, 2, 3): "41"
 */
#include "serve.h"

volatile int k = 5;

__attribute__((noinline)) int small(int x) { return x * k + 1; }

__attribute__((noinline)) int caller(int a, int b, int c) {
  int keep = b * c + a; /* live across the call */
  int r = small(a);
  return r + keep * k;
}

int (*volatile caller_ptr)(int, int, int) = caller;

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") != 0) return 0;
  snprintf(reply, n, "%d", caller_ptr(1, 2, 3));
  return 1;
}

int main(void) {
  serve(handle);
  return 0;
}
