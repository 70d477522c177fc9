/* a.c and b.c both have a static function named parse. */
#include <string.h>

__attribute__((noinline)) static int parse(const char *s) { return (int)strlen(s) + 200; }

int parse_b(const char *s) { return parse(s); }
