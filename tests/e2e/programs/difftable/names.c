/* names.c: a program whose fixes change static data (from_diff_table.sh).
 *
 * names[] (who may log in) is never written: GCC makes it read-only.
 * admins[] and attempts_limit are never written either, but volatile: they
 * stay in writable data, and graft finds their readers' loads and no store.
 * A fix that changes any of them is carried with every function that reads
 * them. seen is written by note(): a fix that changes its initial value
 * must be refused.
 *
 * Commands (see serve.h):
 *   allowed NAME   1 if NAME is in names[], else 0
 *   admin NAME     1 if NAME is in admins[], else 0
 *   listed         how many names there are
 *   limit          attempts_limit
 *   note           counts a call in seen; answers it
 */
#include <stdio.h>
#include <string.h>

#include "programs/serve.h"

static const char *names[] = {"alice", "bob", "mallory", NULL};
static const char *volatile admins[] = {"root", "ops", "guest", NULL};
static volatile int attempts_limit = 3;
static int seen;

__attribute__((noinline)) int allowed(const char *who) {
  for (int i = 0; names[i]; i++)
    if (strcmp(names[i], who) == 0) return 1;
  return 0;
}

__attribute__((noinline)) int admin(const char *who) {
  for (int i = 0; admins[i]; i++)
    if (strcmp(admins[i], who) == 0) return 1;
  return 0;
}

__attribute__((noinline)) int listed(void) {
  int n = 0;
  while (names[n]) n++;
  return n;
}

__attribute__((noinline)) int limit(void) { return attempts_limit; }

__attribute__((noinline)) int note(void) { return ++seen; }

static int handle(const char *cmd, char *reply, size_t n) {
  char who[64];
  if (sscanf(cmd, "allowed %63s", who) == 1)
    snprintf(reply, n, "%d", allowed(who));
  else if (sscanf(cmd, "admin %63s", who) == 1)
    snprintf(reply, n, "%d", admin(who));
  else if (strcmp(cmd, "listed") == 0)
    snprintf(reply, n, "%d", listed());
  else if (strcmp(cmd, "limit") == 0)
    snprintf(reply, n, "%d", limit());
  else if (strcmp(cmd, "note") == 0)
    snprintf(reply, n, "%d", note());
  else
    return 0;
  return 1;
}

int main(void) {
  watch("allowed", (const void *)allowed);
  serve(handle);
  return 0;
}
