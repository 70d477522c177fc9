#include "geometry.h"

namespace {
// Internal linkage: a local symbol of this unit only.
__attribute__((noinline)) int clamp_side(int v) { return v < 0 ? 0 : v; }
}  // namespace

long area(int w, int h) { return scaled<long>(clamp_side(w), clamp_side(h)); }

int apply_all(int n) {
  // Through std::function, the lambda's body is a function of its own.
  std::function<int(int)> add = [n](int x) { return x + n; };
  volatile int s = 0;
  for (int i = 0; i < 3; i++) s = s + add(i);
  return s;
}
