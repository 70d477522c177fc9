/* ifnmain.c: uses libifn.so (programs/libifn.c). Without IMPORT_STRING it
 * imports neither strlen nor memcpy (so it does not use serve.h, whose
 * string calls GCC may turn into memcpy); with it, it calls both, so its GOT
 * holds what the dynamic linker chose for them. Line protocol of serve.h.
 * Commands:
 *   length WORD    ifn_length(WORD)
 *   copy WORD      "N COPY": ifn_copy() of WORD
 *   addr NAME      dlsym(RTLD_DEFAULT, NAME): for an IFUNC, the
 *                  implementation the dynamic linker chooses
 *   own WORD       with IMPORT_STRING: "N COPY", by strlen() and memcpy()
 *                  called by the program itself
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
#ifdef IMPORT_STRING
#include <string.h>
#endif

int ifn_length(const char *s);
int ifn_copy(char *dst, const char *src, int n);

static int starts(const char *s, const char *prefix) {
  while (*prefix)
    if (*s++ != *prefix++) return 0;
  return 1;
}
static int count(const char *s) {
  int n = 0;
  while (s[n]) n++;
  return n;
}

static void handle(const char *cmd, char *reply, int size) {
  if (starts(cmd, "length ")) {
    snprintf(reply, size, "%d", ifn_length(cmd + 7));
  } else if (starts(cmd, "copy ")) {
    char buf[256];
    int n = ifn_copy(buf, cmd + 5, count(cmd + 5));
    snprintf(reply, size, "%d %s", n, buf);
  } else if (starts(cmd, "addr ")) {
    snprintf(reply, size, "%p", dlsym(RTLD_DEFAULT, cmd + 5));
#ifdef IMPORT_STRING
  } else if (starts(cmd, "own ")) {
    char buf[256];
    size_t n = strlen(cmd + 4);
    memcpy(buf, cmd + 4, n + 1);
    snprintf(reply, size, "%zu %s", n, buf);
#endif
  } else {
    snprintf(reply, size, "unknown command");
  }
}

int main(void) {
  char line[512], reply[512];
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {
    int n = count(line);
    if (n && line[n - 1] == '\n') line[n - 1] = 0;
    handle(line, reply, sizeof reply);
    printf("%s\n", reply);
    fflush(stdout);
  }
  return 0;
}
