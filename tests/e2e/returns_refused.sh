#!/usr/bin/env bash
# ctest-timeout: 240
# Where unwinding through an exit stub would break, graft does not rewrite
# a return address: the thread is left to the other checks, and graft says
# why in a note: a process that maps LLVM's libc++ and libunwind, which
# ignore the stubs' unwind information graft registers with libgcc. (A
# process that unwinds with libgcc, shared or static, gets its stubs:
# returns_unwind_*.sh.) The sleeper of programs/returns.c never blocks
# outside dwell(), so lazy gives up.
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/returns.c" -o "$T/returns-llvm" -Wl,--no-as-needed -l:libc++.so.1
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_dwell(int ms) { return 2 + ms * 0; }
GRAFT_REPLACE(dwell, new_dwell);
C

for kind in llvm; do
  build_patch "$T/fix.c" "$T/returns-$kind" "$T/fix-$kind.graft"
  start_target s "$T/returns-$kind"
  pid=${TPID[s]}
  grep -q 'libc++' "/proc/$pid/maps" || fail "the target does not map libc++"
  want='lib(c\+\+|unwind)'
  ask s sleeper >/dev/null
  expect s "entered 1" 1
  rc=0
  graft apply "$T/fix-$kind.graft" --pid "$pid" --model lazy --timeout 1 --json || rc=$?
  [[ $rc -eq 1 ]] || fail "$kind: lazy apply exited with $rc, expected 1 (rolled back)"
  rewritten=$(json_get 'j["results"][0]["returns_rewritten"]' <"$T/graft.out")
  notes=$(json_get '" ".join(j["results"][0]["notes"])' <"$T/graft.out")
  log "$kind: rewritten=$rewritten; notes: $notes"
  [[ $rewritten -eq 0 ]] || fail "$kind: graft rewrote a return address"
  [[ $notes =~ "return addresses not rewritten".*$want ]] || fail "$kind: no note naming $want: $notes"
  assert_untouched "$pid"
  expect s call 1
  stop_target s
done
log "ok"
