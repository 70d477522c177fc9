#include "shop.h"

static int discount = 10; /* percent */

void set_discount(int percent) { discount = percent; }

/* A static function; stock.c has another one of the same name. */
static __attribute__((noinline)) long clamp(long v) { return v < 0 ? 0 : v; }

/* The bug: the discount is applied twice. */
long price_after_discount(long cents) {
  long once = cents - cents * discount / 100;
  return clamp(once - once * discount / 100);
}

long price_with_tax(long cents) { return scale(cents, 120); }

const char *currency(void) { return "EUR"; }

long audit(void) { return -1; }

/* Three bytes (xor, ret): too short for the jump a replacement needs. */
int shop_flags(void) { return 0; }
