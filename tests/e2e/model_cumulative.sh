#!/usr/bin/env bash
# Atomic replace under the per-thread models. Over a stack of a (hybrid:
# work() and level()) and b (stop model: level()), a cumulative patch c that
# replaces level() only takes their place in one per-thread transition:
# work() goes back to its original code through a gate of c's own (the
# kernel's "nop" function), level() runs c's code, and a's and b's regions
# go when every thread is new. While a thread is inside a's work(), the
# transition cannot complete and turns back, leaving a and b as they were.
# --force is refused. c is then reverted per thread. graft killed during
# the transition leaves every call good and `graft recover' rolls it back;
# killed after the switch, recover settles c's record and completes the
# removal of a and b, and c still reverts per thread; the same for d, which
# replaces every function a and b patched (nothing put back). The same
# kills under the stop model. Last, the lazy model on a target whose
# threads all block in the kernel.
source "$(dirname "$0")/common.sh"

build_transition_target
cat >"$T/a.c" <<'C'
#include <graft/patch.h>
#include <sched.h>
extern volatile int holding, hold_arrived;
static int work_a(int x) {
  if (x == 1000) {  /* `hold' parks its thread here */
    hold_arrived = 1;
    while (holding) sched_yield();
  }
  return 3 * x + 2;
}
static int level_a(void) { return 1; }
GRAFT_REPLACE(work, work_a);
GRAFT_REPLACE(level, level_a);
C
cat >"$T/b.c" <<'C'
#include <graft/patch.h>
static int level_b(void) { return 2; }
GRAFT_REPLACE(level, level_b);
C
cat >"$T/c.c" <<'C'
#include <graft/patch.h>
static int level_c(void) { return 3; }
GRAFT_REPLACE(level, level_c);
GRAFT_CUMULATIVE;
C
cat >"$T/d.c" <<'C'
#include <graft/patch.h>
static int work_d(int x) { return 3 * x + 2; }
static int level_d(void) { return 4; }
GRAFT_REPLACE(work, work_d);
GRAFT_REPLACE(level, level_d);
GRAFT_CUMULATIVE;
C
for p in a b c d; do build_patch "$T/$p.c" "$T/transition" "$T/$p.graft"; done

start_target t "$T/transition"
pid=${TPID[t]}
expect t "load 4" ok
original=$(ask t "bytes work")

# listed PID: the names of the patches `graft list' shows, as "a,b".
listed() {
  "$GRAFT" list --pid "$1" --json |
    "$PYTHON" -c 'import json,sys; print(",".join(p["name"] for p in json.load(sys.stdin)["processes"][0]["patches"]))'
}
stack_ab() {
  apply_ok "$T/a.graft" "$pid" --model hybrid --timeout 30
  apply_ok "$T/b.graft" "$pid" --model stop --timeout 30
  expect t level 2
  expect_epoch t new
  [[ $(listed "$pid") == a,b ]] || fail "expected a and b applied, found $(listed "$pid")"
}
check_replaced() {
  [[ $(listed "$pid") == c ]] || fail "graft list should show c alone: $(listed "$pid")"
  graft_ok list --pid "$pid" --json
  [[ $(json_get '[f["symbol"] for f in j["processes"][0]["patches"][0]["functions"]]' <"$T/graft.out") == '["level"]' ]] ||
    fail "c's record should list level() alone once the transition is over"
  [[ $(graft_regions "$pid" | awk '/graft:[0-9a-f]/ {print $6}' | sort -u | wc -l) -eq 1 ]] ||
    fail "the replaced patches' regions are still mapped"
  expect t level 3
  expect_epoch t old
  expect t call 16
  [[ $(ask t "bytes work") == "$original" ]] || fail "work() is not its original code again"
}

# killed_apply POINT PATCH MODEL: graft applies PATCH and kills itself at
# fault point POINT.
killed_apply() {
  local rc=0
  GRAFT_FAULT=$1 "$GRAFT" apply "$T/$2.graft" --pid "$pid" --model "$3" --timeout 30 >"$T/kill.out" 2>&1 || rc=$?
  [[ $rc -eq 137 ]] || fail "graft was not killed at $1 (exit $rc): $(cat "$T/kill.out")"
}
# reverted_per_thread NAME: NAME goes back per thread (no fall-back to the
# stop model), and the target is as before any patch.
reverted_per_thread() {
  graft_ok revert "$1" --pid "$pid" --json
  [[ $(json_get 'j["results"][0]["model"]' <"$T/graft.out") == hybrid ]] || fail "$1 was not reverted per thread"
  [[ $(json_get '"|".join(j["results"][0]["notes"])' <"$T/graft.out") != *"stop model"* ]] ||
    fail "the revert of $1 fell back to the stop model"
  expect t level 0
  expect_epoch t old
  assert_untouched "$pid"
}

stack_ab
log "a thread inside a's work(): the cumulative transition cannot complete"
expect t hold holding
graft apply "$T/c.graft" --pid "$pid" --model hybrid --timeout 2 --json && fail "the apply should fail"
error=$(json_get 'j["results"][0]["error"]' <"$T/graft.out")
[[ $error == *"rolled back"* && $error == *"inside the code of patch a"* ]] ||
  fail "the apply should turn back, naming a's code: $error"
[[ $(json_get 'j["results"][0]["rolled_back"]' <"$T/graft.out") == true ]] || fail "rolled_back is not set"
[[ $(listed "$pid") == a,b ]] || fail "a and b should stay after the roll-back: $(listed "$pid")"
expect t level 2
graft_fails 1 apply "$T/c.graft" --pid "$pid" --model hybrid --force
[[ $GRAFT_ERROR == *"--force cannot switch a cumulative patch"* ]] || fail "--force not refused: $GRAFT_ERROR"
expect t release released
expect_epoch t new

graft_ok apply "$T/c.graft" --pid "$pid" --model hybrid --timeout 30 --json
[[ $(json_get 'j["results"][0]["ok"]' <"$T/graft.out") == true ]] || fail "apply not ok"
[[ $(json_get 'j["results"][0]["pause_ms"]' <"$T/graft.out") == 0* ]] || fail "a global pause during a per-thread apply"
notes=$(json_get '"|".join(j["results"][0]["notes"])' <"$T/graft.out")
[[ $notes == *"replaced patch a "* && $notes == *"replaced patch b "* ]] || fail "apply does not say it replaced a and b: $notes"
assert_no_wx "$pid"
check_replaced
log "c replaced a and b in one per-thread transition"

reverted_per_thread c

log "graft killed while the entries go to the new code: every call stays good"
stack_ab
killed_apply entry-int3:2 c hybrid
s=$(epoch_stats t)
log "calls with nobody tracing the target: $s"
[[ $s == *" bad=0" ]] || fail "calls returned garbage: $s"
graft_ok recover --pid "$pid"
grep -q "rolled back the abandoned hybrid transition of patch c" "$T/graft.out" || fail "recover did not roll c back"
[[ $(listed "$pid") == a,b ]] || fail "a and b should be back after recover: $(listed "$pid")"
expect t level 2
expect_epoch t new

# Killed right after the switch (a and b marked for removal), and after
# c's record is settled: recover settles it if need be and removes a and b;
# c then reverts per thread.
for point in replaced record-settled; do
  log "graft killed at $point"
  [[ $(listed "$pid") == "" ]] && stack_ab
  killed_apply $point c hybrid
  expect t level 3
  expect_epoch t old
  graft_ok recover --pid "$pid"
  if [[ $point == replaced ]]; then
    grep -q "settled the record of cumulative patch c" "$T/graft.out" || fail "recover did not settle c's record"
  fi
  grep -q "completed the interrupted revert of patch a" "$T/graft.out" || fail "recover did not remove a"
  grep -q "completed the interrupted revert of patch b" "$T/graft.out" || fail "recover did not remove b"
  check_replaced
  reverted_per_thread c
done
# d replaces every function a and b patched (nothing put back): its record
# must still be settled (old paths rebased) if graft dies after the switch.
log "graft killed right after the switch of a patch that puts nothing back"
stack_ab
killed_apply replaced d hybrid
graft_ok recover --pid "$pid"
grep -q "settled the record of cumulative patch d" "$T/graft.out" || fail "recover did not settle d's record"
grep -q "completed the interrupted revert of patch a" "$T/graft.out" || fail "recover did not remove a"
[[ $(listed "$pid") == d ]] || fail "graft list should show d alone: $(listed "$pid")"
expect t level 4
expect_epoch t new
reverted_per_thread d

log "stop model: graft killed between two entry writes of the switch"
stack_ab
killed_apply entry-written:1 c stop
expect t level 3
expect_epoch t new  # half applied: level() is c's, work() still a's
graft_ok recover --pid "$pid"
grep -q "rolled back the interrupted apply of patch c" "$T/graft.out" || fail "recover did not roll c back"
[[ $(listed "$pid") == a,b ]] || fail "a and b should be back after recover: $(listed "$pid")"
expect t level 2
expect_epoch t new

log "stop model: graft killed between marking c applied and a and b replaced"
killed_apply marked-applied c stop
graft_ok recover --pid "$pid"
grep -q "settled the record of cumulative patch c" "$T/graft.out" || fail "recover did not settle c's record"
grep -q "completed the interrupted revert of patch a" "$T/graft.out" || fail "recover did not remove a"
grep -q "completed the interrupted revert of patch b" "$T/graft.out" || fail "recover did not remove b"
check_replaced
graft_ok revert c --pid "$pid"
expect t level 0
assert_untouched "$pid"
stop_target t

log "lazy: every thread blocked in the kernel moves at once"
start_target q "$T/transition"
pid=${TPID[q]}
apply_ok "$T/a.graft" "$pid" --model lazy --timeout 30
expect q level 1
expect q call 17
apply_ok "$T/c.graft" "$pid" --model lazy --timeout 30
[[ $(listed "$pid") == c ]] || fail "lazy: graft list should show c alone: $(listed "$pid")"
expect q level 3
expect q call 16
graft_ok revert c --pid "$pid"
expect q level 0
assert_untouched "$pid"
log "ok"
