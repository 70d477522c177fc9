#include "calc.h"

/* Every build has its own build-id (apply --all must find only the test's processes). */
__attribute__((used)) static const char calc_tag[] = CALC_TAG;

static __attribute__((noinline)) int weight(int x) { return calc_table[x & 3]; }

/* Exported, and called in this file: with -fno-semantic-interposition GCC
   calls it through a local alias, calc_scale.localalias in the library. */
__attribute__((noinline)) int calc_scale(int x) { return x; }

int calc(int x) {
  __atomic_add_fetch(&calc_calls, 1, __ATOMIC_RELAXED);
  return calc_scale(x) * weight(x);
}

int calc_count(void) { return __atomic_load_n(&calc_calls, __ATOMIC_RELAXED); }

const char *calc_name(void) { return "calc"; }
