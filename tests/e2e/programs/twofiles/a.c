/* a.c and b.c both have a static function named parse. */
#include <string.h>

__attribute__((noinline)) static int parse(const char *s) { return (int)strlen(s) + 100; }

int parse_a(const char *s) { return parse(s); }
