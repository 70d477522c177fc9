/* demo/fix.c: a live patch for demo/server.c.
 *
 *   graft build --from-source demo/fix.c --target build/demo/server -o fix.graft
 *   graft apply fix.graft --pid PID
 *
 * Security fix for format_reply(): the name is escaped (quotes, backslashes
 * and control bytes) and cut to MAX_NAME characters, so that a request can
 * no longer rewrite the reply nor push its end out of the buffer. The patched
 * reply also says that it comes from the patch, and which request it is.
 *
 * It uses, from the running server, the global `requests_served` and the
 * static function server_version(), and from libc, snprintf(): graft resolves
 * all three when the patch is applied.
 */
#include <graft/patch.h>

#include <stddef.h>
#include <stdio.h>

#define MAX_NAME 32 /* characters of escaped name kept in the reply */

extern unsigned long requests_served; /* the server's global */
const char *server_version(void);     /* static in the server */

/* Writes `name` escaped into out[0..n): at most MAX_NAME characters, then
 * "..." if the name was longer. Always NUL-terminates (n > 0). */
static void escape_name(char *out, size_t n, const char *name) {
  size_t o = 0;
  size_t i = 0;
  for (; name[i] != '\0'; i++) {
    unsigned char c = (unsigned char)name[i];
    char esc[5];
    size_t len;
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      len = 2;
    } else if (c < 0x20 || c >= 0x7f) {
      static const char hex[] = "0123456789abcdef";
      esc[0] = '\\';
      esc[1] = 'x';
      esc[2] = hex[c >> 4];
      esc[3] = hex[c & 15];
      len = 4;
    } else {
      esc[0] = (char)c;
      len = 1;
    }
    if (o + len > MAX_NAME || o + len + 1 > n)
      break;
    for (size_t k = 0; k < len; k++)
      out[o++] = esc[k];
  }
  if (name[i] != '\0' && o + 4 <= n) {
    out[o++] = '.';
    out[o++] = '.';
    out[o++] = '.';
  }
  out[o] = '\0';
}

/* Replaces format_reply(char *out, size_t n, const char *request). */
static int format_reply_fixed(char *out, size_t n, const char *request) {
  unsigned long nr = __atomic_add_fetch(&requests_served, 1, __ATOMIC_RELAXED);
  char name[MAX_NAME + 4]; /* escaped name, "..." and NUL */
  escape_name(name, sizeof name, request);
  int len = snprintf(out, n, "hello, \"%s\" (%s, live-patched by graft: request #%lu)",
                     name, server_version(), nr);
  if (len < 0)
    len = 0;
  if (n == 0)
    return 0;
  return (size_t)len < n ? len : (int)(n - 1);
}

GRAFT_REPLACE(format_reply, format_reply_fixed);
