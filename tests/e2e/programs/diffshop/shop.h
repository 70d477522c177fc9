/* Shared by every unit of the shop. */
#ifndef SHOP_H
#define SHOP_H

struct item {
  int id;
  int count;
};

/* Inlined into its callers in price.c and stock.c. */
static inline long scale(long v, long percent) { return v * percent / 100; }

long price_after_discount(long cents);
void set_discount(int percent);
long price_with_tax(long cents);
const char *currency(void);
long audit(void);
int shop_flags(void);
int stock_level(int item);
long stock_value(long n);
int item_count(const struct item *it);

#endif
