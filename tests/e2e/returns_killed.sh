#!/usr/bin/env bash
# ctest-timeout: 240
# graft killed (SIGKILL) right after it pointed the return address of a
# sleeping thread's dwell() frame at one of its stubs (programs/returns.c):
# the per-thread models' exit stub (fault point return-rewritten) and the
# stop model's return trap (return-trapped). 1) `graft recover' right away,
# the thread still inside dwell(): recovery puts the return address back
# before it removes the region, and the thread returns normally; for both
# stubs. 2) The thread returns through its exit stub with nobody tracing
# it: graft's SIGTRAP handler sends it on in the stub, which moves it and
# returns; then the next graft run repairs the process. The target
# survives all of it. (A thread returning through the stop model's trap
# alone: tests/e2e/stop_returns.sh.)
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/returns.c" -o "$T/returns"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <time.h>
static int new_dwell(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  return 2;
}
GRAFT_REPLACE(dwell, new_dwell);
C
build_patch "$T/fix.c" "$T/returns" "$T/fix.graft"

start_target s "$T/returns"
pid=${TPID[s]}
tid=$(ask s sleeper)
original=$(ask s "bytes dwell")

# killed_apply MODEL FAULT-POINT
killed_apply() {
  local rc=0
  GRAFT_FAULT=$2 "$GRAFT" apply "$T/fix.graft" --pid "$pid" --model "$1" --timeout 20 \
    >"$T/graft.out" 2>&1 || rc=$?
  [[ $rc -eq 137 ]] || fail "graft was not killed at $2 (exit $rc): $(cat "$T/graft.out")"
  kill -0 "$pid" || fail "the target died with graft"
}
returned() { read -r _ _ r <<<"$(ask s last)"; [[ $r -gt $returns0 ]]; }

# 1) Recovered while the sleeper is still inside dwell().
for stub in "hybrid return-rewritten" "stop return-trapped"; do
  log "--- $stub"
  n=$(ask s "entered 0")
  expect s "entered $((n + 1))" $((n + 1))
  sleep 0.3
  read -r _ _ returns0 <<<"$(ask s last)"
  killed_apply $stub
  graft_ok recover --pid "$pid"
  grep -q "put back the return address of 1 thread" "$T/graft.out" ||
    fail "recover did not put the sleeper's return address back: $(cat "$T/graft.out")"
  assert_untouched "$pid"
  [[ $(ask s "bytes dwell") == "$original" ]] || fail "the entry of dwell() was not restored"
  read -r _ _ returns <<<"$(ask s last)"
  [[ $returns -eq $returns0 ]] || fail "the sleeper left dwell() before recovery was done; the test needs more time"
  wait_until 10 returned || fail "the sleeper did not return from dwell()"
  read -r r _ _ <<<"$(ask s last)"
  [[ $r -eq 1 ]] || fail "the sleeper's dwell() returned $r, expected the original's 1"
  kill -0 "$pid" || fail "the target died"
  expect s call 1
done

# 2) The sleeper returns through its stub while no graft runs.
n=$(ask s "entered 0")
expect s "entered $((n + 1))" $((n + 1))
sleep 0.3
read -r _ _ returns0 <<<"$(ask s last)"
killed_apply hybrid return-rewritten
wait_until 10 returned || fail "the sleeper did not return from dwell()"
kill -0 "$pid" || fail "the target died when the sleeper returned through its stub"
[[ $(grep -c SIGTRAP "$T/s.err" || true) -eq 0 ]] || fail "the target reported a SIGTRAP"
# Its universe is the new one now: its next calls run the replacement.
sleep 3.5
read -r r _ _ <<<"$(ask s last)"
[[ $r -eq 2 ]] || fail "after its stub the sleeper should run the new dwell(), got $r"
[[ $(ask s call) =~ ^[12]$ ]] || fail "the main thread's call failed"  # moved or not before the kill
graft_ok recover --pid "$pid" --timeout 20
grep -q "rolled back" "$T/graft.out" || fail "recover did not roll back: $(cat "$T/graft.out")"
assert_untouched "$pid"
returned_old() { read -r r _ _ <<<"$(ask s last)"; [[ $r -eq 1 ]]; }
wait_until 10 returned_old || fail "the sleeper does not run the original dwell() again"
kill -0 "$pid" || fail "the target died"
log "ok"
