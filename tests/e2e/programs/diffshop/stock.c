#include "shop.h"

static int levels[4] = {5, -3, 7, 0};

/* Same name as price.c's clamp, another body. */
static __attribute__((noinline)) int clamp(int v) { return v > 100 ? 100 : v; }

int stock_level(int item) {
  static long asked; /* a static local */
  asked++;
  return clamp(levels[item & 3]);
}

long stock_value(long n) { return scale(n, 250); }

int item_count(const struct item *it) { return it->count; }
