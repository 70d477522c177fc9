#!/usr/bin/env bash
# --force: a thread held inside work() would keep a hybrid transition
# waiting; with --force every thread moves at once, unchecked, and graft
# warns as the kernel does. The held thread then finishes its old call (the
# unsafety --force accepts). With --model stop, --force is refused. The
# revert goes back per thread with --force too, and warns the same way.
source "$(dirname "$0")/common.sh"

build_transition_target
start_target t "$T/transition"
pid=${TPID[t]}
expect t "load 2" ok
expect t hold holding
graft_fails 2 apply "$T/fix.graft" --pid "$pid" --model stop --force
[[ $GRAFT_ERROR == *"--force needs --model"* ]] || fail "unexpected error: $GRAFT_ERROR"

apply_ok "$T/fix.graft" "$pid" --model hybrid --force --timeout 10 --json
grep -q "warning: .*without a stack check (--force)" "$T/graft.err" || fail "no --force warning"
[[ $(json_get 'j["results"][0]["forced"] >= 1' <"$T/graft.out") == true ]] || fail "no thread reported as forced"
expect t call 17
expect t release released
expect_epoch t new
graft_ok revert fix --pid "$pid" --force
grep -q "warning: .*moved to the old code without a stack check (--force)" "$T/graft.err" ||
  fail "no --force warning from the revert"
expect_epoch t old
assert_untouched "$pid"
