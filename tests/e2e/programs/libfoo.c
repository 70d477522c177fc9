/* libfoo.c: a shared library, patched in every process that maps it.
 * Built with -DFOO_TAG="..." so that every build has its own build-id (graft
 * apply --all must only ever find the processes of the test that built it). */
#include <stdatomic.h>

#ifndef FOO_TAG
#define FOO_TAG "untagged"
#endif
__attribute__((used)) const char foo_tag[] = FOO_TAG;

int foo_calls;  /* patches update it */

__attribute__((noinline)) static int foo_scale(int x) { return x * 2; }

__attribute__((noinline)) int foo_compute(int x) { return foo_scale(x) + 1; }

int foo_calls_now(void) { return __atomic_load_n(&foo_calls, __ATOMIC_RELAXED); }
