/* The shop's command loop (tests/e2e/programs/serve.h protocol). Patched
 * functions are called through volatile pointers: the loop makes no
 * assumption about their registers. */
#include <stdlib.h>

#include "programs/serve.h"
#include "shop.h"

static long (*volatile price_fn)(long) = price_after_discount;
static long (*volatile tax_fn)(long) = price_with_tax;
static const char *(*volatile currency_fn)(void) = currency;
static long (*volatile audit_fn)(void) = audit;
static int (*volatile flags_fn)(void) = shop_flags;
static int (*volatile level_fn)(int) = stock_level;
static long (*volatile value_fn)(long) = stock_value;
static int (*volatile count_fn)(const struct item *) = item_count;

static int handle(const char *cmd, char *reply, size_t n) {
  long arg = strchr(cmd, ' ') ? atol(strchr(cmd, ' ') + 1) : 0;
  struct item it = {7, 42};
  if (strncmp(cmd, "price", 5) == 0) snprintf(reply, n, "%ld", price_fn(arg));
  else if (strncmp(cmd, "tax", 3) == 0) snprintf(reply, n, "%ld", tax_fn(arg));
  else if (strcmp(cmd, "currency") == 0) snprintf(reply, n, "%s", currency_fn());
  else if (strcmp(cmd, "flags") == 0) snprintf(reply, n, "%d", flags_fn());
  else if (strcmp(cmd, "audit") == 0) snprintf(reply, n, "%ld", audit_fn());
  else if (strncmp(cmd, "level", 5) == 0) snprintf(reply, n, "%d", level_fn((int)arg));
  else if (strncmp(cmd, "value", 5) == 0) snprintf(reply, n, "%ld", value_fn(arg));
  else if (strncmp(cmd, "discount", 8) == 0) {
    set_discount((int)arg);
    snprintf(reply, n, "ok");
  } else if (strcmp(cmd, "count") == 0) snprintf(reply, n, "%d", count_fn(&it));
  else return 0;
  return 1;
}

int main(void) {
  serve(handle);
  return 0;
}
