/* expat_probe: a long-running program that uses libexpat, for the test of
 * `graft build --debian-source` on Debian's expat (tests/e2e/
 * from_debian_source.sh). It speaks the line protocol of the end-to-end
 * targets (tests/e2e/programs/serve.h):
 *
 *   negative       XML_ParseBuffer() with a negative length (CVE-2024-45490):
 *                  "status S error E"; the unfixed library accepts it
 *                  (status 1), the fixed one refuses it (status 0 error 41,
 *                  XML_ERROR_INVALID_ARGUMENT)
 *   stats          the background parser's counts: "ok N failed M"
 *
 * A background thread parses a document over and over (with a pause of
 * 100 us between documents), in pieces through
 * XML_GetBuffer/XML_ParseBuffer (the function the fix replaces), and checks
 * what it saw; any wrong result is counted.
 */
#include <expat.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

static atomic_long parsed_ok, parsed_failed;

static void XMLCALL count_start(void *data, const XML_Char *name, const XML_Char **attributes) {
  (void)name;
  (void)attributes;
  ++*(int *)data;
}

static int parse_once(void) {
  static const char doc[] = "<doc><item n='1'/><item n='2'>text</item><item n='3'/></doc>";
  XML_Parser p = XML_ParserCreate(NULL);
  if (!p) return 0;
  int elements = 0;
  XML_SetUserData(p, &elements);
  XML_SetStartElementHandler(p, count_start);
  int ok = 1;
  for (size_t at = 0, len = strlen(doc); at < len && ok; at += 7) {
    size_t n = len - at < 7 ? len - at : 7;
    void *buf = XML_GetBuffer(p, (int)n);
    if (!buf) ok = 0;
    else {
      memcpy(buf, doc + at, n);
      ok = XML_ParseBuffer(p, (int)n, at + n == len) == XML_STATUS_OK;
    }
  }
  XML_ParserFree(p);
  return ok && elements == 4;
}

static void *parse_loop(void *unused) {
  (void)unused;
  for (;;) {
    if (parse_once()) atomic_fetch_add(&parsed_ok, 1);
    else atomic_fetch_add(&parsed_failed, 1);
    usleep(100);  /* busy, but leaving the cores to the builds beside it */
  }
  return NULL;
}

static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "negative") == 0) {
    XML_Parser p = XML_ParserCreate(NULL);
    char *buf = XML_GetBuffer(p, 64);
    memcpy(buf, "<doc>", 5);
    enum XML_Status s = XML_ParseBuffer(p, -1, XML_FALSE);
    snprintf(reply, n, "status %d error %d", (int)s, (int)XML_GetErrorCode(p));
    XML_ParserFree(p);
    return 1;
  }
  if (strcmp(cmd, "stats") == 0) {
    snprintf(reply, n, "ok %ld failed %ld", atomic_load(&parsed_ok), atomic_load(&parsed_failed));
    return 1;
  }
  return 0;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, parse_loop, NULL);
  serve(handle);
  return 0;
}
