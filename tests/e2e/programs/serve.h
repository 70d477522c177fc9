/* The line protocol of every end-to-end target.
 *
 * serve() prints "ready PID", then reads commands, one per line, on stdin and
 * answers each with exactly one line on stdout (flushed). It knows two
 * commands itself:
 *   bytes NAME   the first 16 bytes of a function registered with watch()
 *   tid          the id of the thread running serve() (the main thread)
 * and passes every other one to the program's handler, which writes its
 * answer into `reply' (an unknown command gets "unknown command").
 * serve() returns at end of input.
 */
#ifndef E2E_SERVE_H
#define E2E_SERVE_H

#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*serve_handler)(const char *cmd, char *reply, size_t n);

struct serve_watch {
  const char *name;
  const void *address;
};
static struct serve_watch serve_watches[16];
static int serve_nwatches;

static inline void watch(const char *name, const void *address) {
  serve_watches[serve_nwatches].name = name;
  serve_watches[serve_nwatches].address = address;
  serve_nwatches++;
}

static inline int serve_gettid(void) { return (int)syscall(SYS_gettid); }

static inline void serve(serve_handler handle) {
  char line[512], reply[4096];
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    reply[0] = 0;
    if (strncmp(line, "bytes ", 6) == 0) {
      snprintf(reply, sizeof reply, "no such function");
      for (int i = 0; i < serve_nwatches; i++) {
        if (strcmp(serve_watches[i].name, line + 6) != 0) continue;
        const unsigned char *p = (const unsigned char *)serve_watches[i].address;
        for (int k = 0; k < 16; k++) snprintf(reply + 2 * k, 3, "%02x", p[k]);
      }
    } else if (strcmp(line, "tid") == 0) {
      snprintf(reply, sizeof reply, "%d", serve_gettid());
    } else if (!handle(line, reply, sizeof reply)) {
      snprintf(reply, sizeof reply, "unknown command");
    }
    printf("%s\n", reply);
    fflush(stdout);
  }
}

#ifdef __cplusplus
}
#endif

#endif
