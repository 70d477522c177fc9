#!/usr/bin/env bash
# ctest-timeout: 240
# A thread longjmps out of a replaced function whose return graft pointed at
# an exit stub (programs/returns.c: dwell_jump() sleeps 3 s, then longjmps
# to its caller's setjmp). The thread never passes its stub; the slot it
# leaves is dead stack. The process must not crash, and the transition
# finishes by the other checks (the thread is outside dwell_jump() for 52 ms
# every 3 s, and spins there): with --model hybrid and lazy, then revert.
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/returns.c" -o "$T/returns"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <setjmp.h>
#include <time.h>
static void new_dwell_jump(int ms, jmp_buf *back) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  longjmp(*back, 2);
}
GRAFT_REPLACE(dwell_jump, new_dwell_jump);
C
build_patch "$T/fix.c" "$T/returns" "$T/fix.graft"

for model in hybrid lazy; do
  start_target s "$T/returns"
  pid=${TPID[s]}
  tid=$(ask s jumper)
  sleep 0.3  # inside dwell_jump(), 2.7 s to go
  jumps0=$(ask s jumps)
  apply_ok "$T/fix.graft" "$pid" --model "$model" --timeout 30 --json
  rewritten=$(json_get 'j["results"][0]["returns_rewritten"]' <"$T/graft.out")
  passed=$(json_get 'j["results"][0]["returns_passed"]' <"$T/graft.out")
  jumps=$(ask s jumps)
  log "$model: jumper $tid: rewritten=$rewritten passed=$passed; longjmps during the apply: $((jumps - jumps0))"
  [[ $rewritten -ge 1 ]] || fail "$model: the jumper's return was not rewritten"
  [[ $passed -eq 0 ]] || fail "$model: a return through a stub was counted, but the jumper longjmps"
  ((jumps > jumps0)) || fail "$model: the transition ended before the jumper left dwell_jump()"
  # It keeps jumping, in the new code now, through the stale slot's stack.
  jumps0=$(ask s jumps)
  sleep 3.2
  jumps=$(ask s jumps)
  ((jumps > jumps0)) || fail "$model: the jumper stopped jumping"
  kill -0 "$pid" || fail "$model: the target died"
  graft_ok revert fix --pid "$pid" --timeout 30 --json
  assert_untouched "$pid"
  sleep 3.2
  ((($(ask s jumps)) > jumps)) || fail "$model: the jumper stopped after the revert"
  stop_target s
done
log "ok"
