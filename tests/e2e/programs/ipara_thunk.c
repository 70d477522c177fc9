/* ipara_thunk.c: callers that keep values in call-clobbered registers across
 * calls to functions GCC knows do not touch them (-fipa-ra, on at -O2), one
 * per register class (see tests/e2e/ipa_ra_thunk.sh, which checks with
 * objdump that they still do):
 *   caller()  keeps b * c + a in esi/edx/edi across small()
 *   vcaller() keeps a * b + 1.0 in an xmm register across scale()
 *   mcaller() keeps x * y + kl in a GPR across many(), which takes two of
 *             its eight arguments on the stack
 * Commands (see serve.h):
 *   call     caller(1, 2, 3): "41"
 *   vcall    vcaller(2.0, 3.0): "13.5"
 *   mcall    mcaller(2, 3): "166"
 *   load N   starts N threads calling the three in a loop: "started"
 *   errors   results the threads got that neither the old nor the new code
 *            computes (patched: small() + 1 or + 2, scale() + 1.0,
 *            many() + 1000): "E of C" after C calls
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "serve.h"

volatile int k = 5;
volatile double kd = 1.5;
volatile long kl = 3;

__attribute__((noinline)) int small(int x) { return x * k + 1; }

__attribute__((noinline)) int caller(int a, int b, int c) {
  int keep = b * c + a; /* live across the call */
  int r = small(a);
  return r + keep * k;
}

__attribute__((noinline)) double scale(double x) { return x * kd; }

__attribute__((noinline)) double vcaller(double a, double b) {
  double keep = a * b + 1.0; /* live across the call, in an xmm register */
  double r = scale(a);
  return r + keep * kd;
}

__attribute__((noinline)) long many(long a, long b, long c, long d, long e, long f, long g, long h) {
  return (a + b + c + d + e + f) * kl + g * 10 + h;
}

__attribute__((noinline)) long mcaller(long x, long y) {
  long keep = x * y + kl; /* live across the call */
  long r = many(x, 2, 3, 4, 5, 6, 7, x + 1);
  return r + keep * kl;
}

int (*volatile caller_ptr)(int, int, int) = caller;
double (*volatile vcaller_ptr)(double, double) = vcaller;
long (*volatile mcaller_ptr)(long, long) = mcaller;

static atomic_long calls, errors;

static void *loop(void *arg) {
  (void)arg;
  for (;;) {
    int r = caller_ptr(1, 2, 3);
    double v = vcaller_ptr(2.0, 3.0);
    long m = mcaller_ptr(2, 3);
    if ((r < 41 || r > 43) || (v != 13.5 && v != 14.5) || (m != 166 && m != 1166))
      atomic_fetch_add(&errors, 1);
    atomic_fetch_add(&calls, 1);
  }
  return NULL;
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") == 0) {
    snprintf(reply, n, "%d", caller_ptr(1, 2, 3));
  } else if (strcmp(cmd, "vcall") == 0) {
    snprintf(reply, n, "%g", vcaller_ptr(2.0, 3.0));
  } else if (strcmp(cmd, "mcall") == 0) {
    snprintf(reply, n, "%ld", mcaller_ptr(2, 3));
  } else if (strncmp(cmd, "load ", 5) == 0) {
    for (int i = atoi(cmd + 5); i > 0; i--) {
      pthread_t t;
      pthread_create(&t, NULL, loop, NULL);
    }
    snprintf(reply, n, "started");
  } else if (strcmp(cmd, "errors") == 0) {
    snprintf(reply, n, "%ld of %ld", atomic_load(&errors), atomic_load(&calls));
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  serve(handle);
  return 0;
}
