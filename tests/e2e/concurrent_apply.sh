#!/usr/bin/env bash
# Two graft invocations on the same process at once. Each apply and revert
# holds an exclusive lock on /run/graft/PID.lock (ProcessLock) from its
# planning to its end: two applies started together both succeed, one after
# the other, and stack in order (seq 1 and 2), never planned against the
# same state. A graft that finds the lock held longer than its --timeout
# refuses cleanly, naming the holder, and leaves the process untouched.
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
for p in a:1000 b:2000; do
  name=${p%%:*} add=${p#*:}
  cat >"$T/patch_$name.c" <<C
#include <graft/patch.h>
extern int counter;
static int compute_$name(int x) { counter++; return $add + x; }
GRAFT_REPLACE(compute, compute_$name);
C
  build_patch "$T/patch_$name.c" "$T/basic" "$T/patch_$name.graft"
done

start_target b "$T/basic"
pid=${TPID[b]}
for round in 1 2 3; do
  "$GRAFT" apply "$T/patch_a.graft" --pid "$pid" --json >"$T/a.json" 2>"$T/a.err" &
  a=$!
  bg_track $a
  "$GRAFT" apply "$T/patch_b.graft" --pid "$pid" --json >"$T/b.json" 2>"$T/b.err" &
  b=$!
  bg_track $b
  wait_bounded $a 60 || fail "round $round: apply a failed: $(cat "$T/a.json" "$T/a.err")"
  wait_bounded $b 60 || fail "round $round: apply b failed: $(cat "$T/b.json" "$T/b.err")"
  graft_ok list --pid "$pid" --json
  stack=$(json_get '[(p["seq"], p["state"]) for p in j["processes"][0]["patches"]]' <"$T/graft.out")
  [[ $stack == '[[1, "applied"], [2, "applied"]]' ]] || fail "round $round: unexpected stack $stack"
  # The newer of the two is the code that runs.
  newest=$(json_get '[p["name"] for p in j["processes"][0]["patches"]][-1]' <"$T/graft.out")
  want=$([[ $newest == patch_a ]] && echo 1003 || echo 2003)
  [[ $(ask b call) == "$want "* ]] || fail "round $round: $newest is not the active patch"
  log "round $round: both applied, $newest on top"
  # And two reverts at once.
  "$GRAFT" revert patch_a --pid "$pid" >"$T/ra.out" 2>&1 &
  a=$!
  bg_track $a
  "$GRAFT" revert patch_b --pid "$pid" >"$T/rb.out" 2>&1 &
  b=$!
  bg_track $b
  wait_bounded $a 60 || fail "round $round: revert a failed: $(cat "$T/ra.out")"
  wait_bounded $b 60 || fail "round $round: revert b failed: $(cat "$T/rb.out")"
  assert_untouched "$pid"
  [[ $(ask b call) == "7 "* ]] || fail "round $round: compute is not the original after both reverts"
done

log "--- the lock held by someone else"
# -o: the lock stays with flock itself, so killing flock releases it.
flock -o "/run/graft/$pid.lock" sleep 30 &
holder=$!
bg_track $holder
wait_until 5 bash -c "! flock -n /run/graft/$pid.lock true" || fail "the lock was not taken"
start=$SECONDS
graft_fails 1 apply "$T/patch_a.graft" --pid "$pid" --timeout 1
[[ $GRAFT_ERROR == *"process $pid is being changed by"* ]] || fail "unexpected error: $GRAFT_ERROR"
((SECONDS - start <= 10)) || fail "the refusal took $((SECONDS - start)) s"
assert_untouched "$pid"
kill "$holder"
wait "$holder" 2>/dev/null || true
apply_ok "$T/patch_a.graft" "$pid"
