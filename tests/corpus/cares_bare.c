/* cares_bare: a program that maps libcares and imports none of glibc's
 * string functions (strlen, strchr, strncpy, memcpy, ...: IFUNCs), so that a
 * fix calling them finds them in no GOT of the program; corpus_cares.sh
 * checks that with readelf. Built with -fno-builtin. Line protocol of the
 * end-to-end targets (tests/e2e/programs/serve.h), without serve.h (whose
 * string calls it would import):
 *
 *   sortlist STR   ares_set_sortlist() on a channel: "status N nsort K"
 */
#include <ares.h>
#include <stdio.h>
#include <unistd.h>

static int starts(const char *s, const char *prefix) {
  while (*prefix)
    if (*s++ != *prefix++) return 0;
  return 1;
}

int main(void) {
  ares_channel channel;
  if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS || ares_init(&channel) != ARES_SUCCESS) {
    fprintf(stderr, "cares_bare: cannot set up a channel\n");
    return 1;
  }
  char line[512];
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {
    int n = 0;
    while (line[n] && line[n] != '\n') n++;
    line[n] = 0;
    if (starts(line, "sortlist ")) {
      int status = ares_set_sortlist(channel, line + 9);
      struct ares_options o;
      int mask = 0, nsort = -1;
      if (ares_save_options(channel, &o, &mask) == ARES_SUCCESS) {
        nsort = (mask & ARES_OPT_SORTLIST) ? o.nsort : 0;
        ares_destroy_options(&o);
      }
      printf("status %d nsort %d\n", status, nsort);
    } else {
      printf("unknown command\n");
    }
    fflush(stdout);
  }
  return 0;
}
