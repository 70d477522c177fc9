#!/usr/bin/env bash
# Replacement code that calls libc (malloc, snprintf, free), an unchanged
# static function of the target, and updates a global of the target.
source "$(dirname "$0")/common.sh"

cc "$PROGRAMS/report.c" -o "$T/report"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <stdio.h>
#include <stdlib.h>

extern unsigned long served;   /* a global of the target */
const char *version(void);     /* a static function of the target */

static int new_describe(char *out, size_t n, int x) {
  char *tmp = malloc(64);
  if (!tmp) return -1;
  int len = snprintf(tmp, 64, "new %d %s #%lu", x, version(), ++served);
  snprintf(out, n, "%s", tmp);
  free(tmp);
  return len;
}
GRAFT_REPLACE(describe, new_describe);
C
build_patch "$T/fix.c" "$T/report" "$T/fix.graft"
graft_ok info "$T/fix.graft" --json
for sym in malloc snprintf free; do
  [[ $(json_get "[e['where'] for e in j['externals'] if e['name'] == '$sym']" <"$T/graft.out") == '["library"]' ]] ||
    fail "$sym is not resolved from a library"
done
[[ $(json_get "[e['where'] for e in j['externals'] if e['name'] in ('served', 'version')]" <"$T/graft.out") == '["target", "target"]' ]] ||
  fail "served and version are not resolved in the target"

start_target r "$T/report"
expect r call "old 3|0|5"
apply_ok "$T/fix.graft" "${TPID[r]}"
expect r call "new 3 v1 #1|1|11"
expect r call "new 3 v1 #2|2|11"
expect r version v1
graft_ok revert fix --pid "${TPID[r]}"
expect r call "old 3|2|5"
assert_untouched "${TPID[r]}"
