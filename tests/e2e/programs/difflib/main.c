/* A program using libcalc.so (tests/e2e/programs/serve.h protocol). */
#include <stdlib.h>

#include "calc.h"
#include "programs/serve.h"

static int handle(const char *cmd, char *reply, size_t n) {
  if (strncmp(cmd, "calc ", 5) == 0) snprintf(reply, n, "%d", calc(atoi(cmd + 5)));
  else if (strcmp(cmd, "count") == 0) snprintf(reply, n, "%d", calc_count());
  else if (strcmp(cmd, "name") == 0) snprintf(reply, n, "%s", calc_name());
  else return 0;
  return 1;
}

int main(void) {
  serve(handle);
  return 0;
}
