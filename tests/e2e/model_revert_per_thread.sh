#!/usr/bin/env bash
# `graft revert' of a patch a per-thread transition applied goes back per
# thread too (by default, the model it was applied with): no global pause,
# every call started after the revert is old, the region is gone. A thread
# that stays inside the new code holds the revert (shown by `graft list',
# reported after --report-after) until it leaves; one that stays past the
# timeout makes the revert turn back: every thread runs the new code again,
# the patch stays applied, and a later revert succeeds. `--model stop' still
# reverts a per-thread patch; a stop-model patch has no gates to go back
# through, and `--model hybrid' refuses it, leaving it applied.
source "$(dirname "$0")/common.sh"

build_transition_target
# The replacement holds a caller of work(1000) inside the new code.
cat >"$T/hold.c" <<'C'
#include <graft/patch.h>
#include <sched.h>
extern volatile int holding;
extern volatile int hold_arrived;
static int new_work(int x) {
  if (x == 1000) {
    hold_arrived = 1;
    while (holding) sched_yield();
  }
  return 3 * x + 2;
}
GRAFT_REPLACE(work, new_work);
C
build_patch "$T/hold.c" "$T/transition" "$T/hold.graft"

start_target t "$T/transition"
pid=${TPID[t]}
expect t "load 4" ok
expect_epoch t old
original=$(ask t "bytes work")
r='j["results"][0]'

log "1. hybrid apply, default revert: per thread"
apply_ok "$T/hold.graft" "$pid" --model hybrid --timeout 20
expect_epoch t new
graft_ok revert hold --pid "$pid" --timeout 20 --json
[[ $(json_get "$r[\"ok\"]" <"$T/graft.out") == true ]] || fail "revert not ok"
[[ $(json_get "$r[\"model\"]" <"$T/graft.out") == hybrid ]] || fail "the revert did not use the model of the apply"
[[ $(json_get "$r[\"pause_ms\"]" <"$T/graft.out") == 0.0 ]] || fail "a per-thread revert reported a global pause"
[[ $(json_get "$r[\"stalls\"] >= $(ask t threads)" <"$T/graft.out") == true ]] || fail "fewer single-thread stops than threads"
log "revert: longest single-thread stall $(json_get "$r[\"stall_max_us\"]" <"$T/graft.out") us, transition $(json_get "$r[\"transition_ms\"]" <"$T/graft.out") ms"
expect t call 16
expect_epoch t old
[[ $(ask t "bytes work") == "$original" ]] || fail "work's entry is not restored"
assert_untouched "$pid"

log "2. a thread inside the new code holds the revert until it leaves"
apply_ok "$T/hold.graft" "$pid" --model hybrid --timeout 20
expect t hold holding
log "\$ graft revert --timeout 60 --report-after 1 (in the background)"
"$GRAFT" revert hold --pid "$pid" --timeout 60 --report-after 1 --json >"$T/revert.out" 2>"$T/revert.err" &
revert_pid=$!
bg_track $revert_pid
reverting() { [[ $(list_state "$pid") == reverting* ]]; }
wait_until 30 reverting || fail "graft list never showed the revert transition"
sleep 1.5  # every thread but the holder moves back
graft_ok list --pid "$pid"
grep -q "transition (hybrid model, driven by graft pid $revert_pid): [0-9]*/[0-9]* threads moved; pending:" "$T/graft.out" ||
  fail "graft list does not show the revert transition"
grep -q "the code of patch hold" "$T/graft.out" || fail "graft list does not say the holder is in the patch's code"
# The moved threads already run the old code; the holder is still inside the new.
expect t call 16
expect_epoch t old
kill -0 $revert_pid || fail "graft revert ended while the holder was inside the new code"
expect t release released
wait_bounded $revert_pid 60 || fail "graft revert failed: $(cat "$T/revert.out" "$T/revert.err")"
sed 's/^/    | /' "$T/revert.out" "$T/revert.err"
grep -q "reverting: [0-9]*/[0-9]* threads moved" "$T/revert.err" || fail "no progress line on stderr"
grep -q "is still pending: .*the code of patch hold" "$T/revert.err" ||
  fail "no report of the pending thread after --report-after"
[[ $(json_get "$r[\"ok\"]" <"$T/revert.out") == true ]] || fail "revert not ok"
expect_epoch t old
assert_untouched "$pid"

log "3. a thread that stays past the timeout: the revert turns back"
apply_ok "$T/hold.graft" "$pid" --model hybrid --timeout 20
applied=$(ask t "bytes work")
expect t hold holding
rc=0
graft revert hold --pid "$pid" --timeout 1.5 --json || rc=$?
[[ $rc -eq 1 ]] || fail "the revert that had to turn back exited with $rc, expected 1"
[[ $(json_get "$r[\"rolled_back\"]" <"$T/graft.out") == true ]] || fail "the revert did not say it turned back"
grep -q "turned back" "$T/graft.out" || fail "the revert does not say it turned back"
[[ $(list_state "$pid") == applied ]] || fail "the patch is not applied after the revert turned back"
[[ $(ask t "bytes work") == "$applied" ]] || fail "work's entry does not jump to the replacement again"
expect t call 17
expect_epoch t new
expect t release released
graft_ok revert hold --pid "$pid" --timeout 20
expect_epoch t old
assert_untouched "$pid"

log "4. --model stop reverts a per-thread patch"
apply_ok "$T/hold.graft" "$pid" --model hybrid --timeout 20
graft_ok revert hold --pid "$pid" --model stop --json
[[ $(json_get "$r[\"model\"]" <"$T/graft.out") == stop ]] || fail "the revert did not use the stop model"
expect_epoch t old
assert_untouched "$pid"

log "5. a stop-model patch cannot go back per thread"
apply_ok "$T/hold.graft" "$pid" --model stop
graft_fails any revert hold --pid "$pid" --model hybrid
[[ $GRAFT_ERROR == *"no gates"* ]] || fail "the refusal does not say why"
[[ $(list_state "$pid") == applied ]] || fail "the refused revert changed the patch"
expect_epoch t new
graft_ok revert hold --pid "$pid"
expect_epoch t old
assert_untouched "$pid"
[[ $(ask t threads) -eq 6 ]] || fail "a thread is gone (4 workers and 2 holders expected)"
