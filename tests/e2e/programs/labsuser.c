/* labsuser.c: calls libc's labs() (built with -fno-builtin, so the call goes
 * to libc.so.6 through the PLT). Commands (see serve.h):
 *   call    "labs(-7)"   e.g. "7"
 */
#include <stdlib.h>

#include "serve.h"

volatile long input = -7;

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") != 0) return 0;
  snprintf(reply, n, "%ld", labs(input));
  return 1;
}

int main(void) {
  serve(handle);
  return 0;
}
