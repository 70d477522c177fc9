/* main.c: calls the parse() of a.c and the one of b.c.
 * Commands (see serve.h):
 *   call    "parse_a(word) parse_b(word)"   "103 203" for the word "abc"
 */
#include "../serve.h"

int parse_a(const char *s);
int parse_b(const char *s);

char word[16] = "abc";

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") != 0) return 0;
  snprintf(reply, n, "%d %d", parse_a(word), parse_b(word));
  return 1;
}

int main(void) {
  serve(handle);
  return 0;
}
