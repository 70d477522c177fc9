/* Functions whose code holds __LINE__ values (from_diff_line_only.sh).
 * Commands (see serve.h): "fixed", "checked", "where", each answers the
 * function's result for the input 5. */
#include <stdio.h>
#include <stdlib.h>

#include "serve.h"

volatile int input = 5;
int calls;

__attribute__((noinline)) int fixed(int x) {
  calls++;
  return x + 1;
}

__attribute__((noinline)) int checked(int x) {
  if (x < 0) {
    fprintf(stderr, "checked: negative value at %s:%d\n", __FILE__, __LINE__);
    abort();
  }
  return x * 2;
}

__attribute__((noinline)) int where(void) {
  return 26; /* its own line number: a constant, not __LINE__ */
}

static int handle(const char *cmd, char *reply, size_t n) {
  /* Through pointers: the loop must not rely on what GCC knows of them. */
  int (*volatile f)(int) = fixed, (*volatile c)(int) = checked;
  int (*volatile w)(void) = where;
  if (strcmp(cmd, "fixed") == 0) snprintf(reply, n, "%d", f(input));
  else if (strcmp(cmd, "checked") == 0) snprintf(reply, n, "%d", c(input));
  else if (strcmp(cmd, "where") == 0) snprintf(reply, n, "%d", w());
  else return 0;
  return 1;
}

int main(void) {
  serve(handle);
  return 0;
}

#ifdef LINES_TRACE
int trace_level(void) {
  return 7;
}
#endif
