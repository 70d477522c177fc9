// The command loop (tests/e2e/programs/serve.h protocol).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "geometry.h"
#include "programs/serve.h"

static Meter meter(5);
static long (*volatile area_fn)(int, int) = area;
static long (*volatile perimeter_fn)(int, int) = perimeter;
static int (*volatile apply_fn)(int) = apply_all;

static int handle(const char* cmd, char* reply, size_t n) {
  int a = 0, b = 0;
  if (std::sscanf(cmd, "area %d %d", &a, &b) == 2) std::snprintf(reply, n, "%ld", area_fn(a, b));
  else if (std::sscanf(cmd, "perimeter %d %d", &a, &b) == 2) std::snprintf(reply, n, "%ld", perimeter_fn(a, b));
  else if (std::sscanf(cmd, "apply %d", &a) == 1) std::snprintf(reply, n, "%d", apply_fn(a));
  else if (std::strcmp(cmd, "next") == 0) std::snprintf(reply, n, "%d", meter.next());
  else return 0;
  return 1;
}

int main() {
  serve(handle);
  return 0;
}
