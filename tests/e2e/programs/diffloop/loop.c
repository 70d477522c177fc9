/* A function with branches inside it (from_diff_encoding.sh).
 * Commands (see serve.h): "total" answers total(input). */
#include "serve.h"

volatile int input = 4;

__attribute__((noinline)) int total(int n) {
  int s = 0;
  for (int i = 0; i < n; i++) s += i * input;
  return s;
}

static int handle(const char *cmd, char *reply, size_t n) {
  int (*volatile t)(int) = total;
  if (strcmp(cmd, "total") != 0) return 0;
  snprintf(reply, n, "%d", t(input));
  return 1;
}

int main(void) {
  serve(handle);
  return 0;
}
