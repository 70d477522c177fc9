#!/usr/bin/env bash
# graft killed (SIGKILL) while a patch callback runs inside the target: the
# borrowed thread finishes the callback, returns into graft's call-return
# thunk and rt_sigreturn puts it back where it was (registers, FPU state,
# signal mask). The target keeps answering; the interrupted apply is
# rolled back by `graft recover'; the patch then applies normally.
# (Before the thunk, the callback returned into a non-executable trap page
# and, without graft to catch the fault, the target died of SIGSEGV.)
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/ledger.c" -o "$T/ledger"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern char callback_log[256];
static void note(const char *s) {
  char *p = callback_log;
  while (*p) p++;
  while (*s) *p++ = *s++;
  *p++ = ',';
  *p = 0;
}
static int version_2(void) { return 2; }
GRAFT_REPLACE(version, version_2);
/* Long enough that graft dies while it runs. */
static int pre(void) {
  for (volatile long i = 0; i < 50000000; i++) {
  }
  note("pre_patch");
  return 0;
}
GRAFT_PRE_PATCH(pre);
C
build_patch "$T/fix.c" "$T/ledger" "$T/fix.graft"

start_target L "$T/ledger"
pid=${TPID[L]}
expect L version 1

for round in 1 2; do
  rc=0
  GRAFT_FAULT=call-running "$GRAFT" apply "$T/fix.graft" --pid "$pid" >"$T/graft.out" 2>&1 || rc=$?
  [[ $rc -eq 137 ]] || fail "graft was not killed during the callback (exit $rc): $(cat "$T/graft.out")"
  log "round $round: graft killed while pre_patch ran"
  # The callback ran on the main thread (blocked in read, so chosen): it
  # finishes on its own, then the thread answers as before.
  expect L version 1
  kill -0 "$pid" || fail "the target died"
  graft_ok recover --pid "$pid"
  grep -q "rolled back the interrupted apply" "$T/graft.out" || fail "recover did not roll back the apply"
  assert_untouched "$pid"
  expect L version 1
done
[[ $(ask L log) == "pre_patch,pre_patch," ]] || fail "the callbacks did not both finish: $(ask L log)"
apply_ok "$T/fix.graft" "$pid"
expect L version 2
