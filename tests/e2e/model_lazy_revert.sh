#!/usr/bin/env bash
# ctest-labels: regression
# A patch applied with --model lazy and reverted without --model goes back
# with the lazy rules, the model it was applied with: a thread that runs
# (never blocked in a system call, no graft_quiescent()) is not at a safe
# point, so the revert waits for it and turns back at the timeout, leaving
# the patch applied. (Regression: the revert printed "model lazy" but moved
# threads by hybrid rules, stopping the running thread and checking its
# stack.) With --model hybrid the same revert then succeeds.
source "$(dirname "$0")/common.sh"

build_transition_target
start_target t "$T/transition"
pid=${TPID[t]}
# Only the main thread, blocked reading commands: a safe point for lazy.
apply_ok "$T/fix.graft" "$pid" --model lazy --timeout 10
expect t call 17
expect t "spin 1" ok  # a worker calling work() in a tight loop, no system call

r='j["results"][0]'
rc=0
graft revert fix --pid "$pid" --timeout 1.5 --json || rc=$?
[[ $rc -eq 1 ]] || fail "the lazy revert with a running thread exited with $rc, expected 1"
GRAFT_ERROR=$(json_get "$r[\"error\"]" <"$T/graft.out")
[[ $(json_get "$r[\"model\"]" <"$T/graft.out") == lazy ]] || fail "the revert's model is not lazy"
[[ $(json_get "$r[\"rolled_back\"]" <"$T/graft.out") == true ]] ||
  fail "the lazy revert did not turn back with a running thread: $GRAFT_ERROR"
[[ $GRAFT_ERROR == *"lazy: moves at a system call"* ]] ||
  fail "the pending thread is not held by the lazy rule: $GRAFT_ERROR"
[[ $(patch_count "$pid") -eq 1 ]] || fail "the patch should still be applied"
expect t call 17

graft_ok revert fix --pid "$pid" --model hybrid --timeout 10 --json
[[ $(json_get "$r[\"model\"]" <"$T/graft.out") == hybrid ]] || fail "the revert's model is not hybrid"
expect t call 16
expect_epoch t old
assert_untouched "$pid"
