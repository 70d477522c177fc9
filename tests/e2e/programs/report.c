/* report.c: describe() formats a reply; the patch of libc_static_global.sh
 * replaces it with one that calls libc (malloc, snprintf, free), an unchanged
 * static function of the target (version) and updates a global (served).
 * Commands (see serve.h):
 *   call     "describe(input)|served|length"   "old 3|0|5"
 *   version  version()
 */
#include "serve.h"

unsigned long served;    /* patches update it */
volatile int input = 3;

__attribute__((noinline)) static const char *version(void) { return input > 0 ? "v1" : "v0"; }

__attribute__((noinline)) int describe(char *out, size_t n, int x) {
  return snprintf(out, n, "old %d", x);
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") == 0) {
    char buf[128];
    int len = describe(buf, sizeof buf, input);
    snprintf(reply, n, "%s|%lu|%d", buf, served, len);
  } else if (strcmp(cmd, "version") == 0) {
    snprintf(reply, n, "%s", version());
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  serve(handle);
  return 0;
}
