#!/usr/bin/env bash
# hybrid: a thread stays inside the old work() for seconds while four
# workers call it in tight loops. The transition moves every other thread at
# once (their calls become new while the holder still runs the old code);
# `graft list' shows the transition with the holder pending inside work();
# graft apply reports progress and, after --report-after, the pending thread.
# Released, the holder finishes its old call, is moved, and the apply
# completes: every later call is new.
source "$(dirname "$0")/common.sh"

build_transition_target
start_target t "$T/transition"
pid=${TPID[t]}
expect t "load 4" ok
expect t hold holding
expect_epoch t old

log "\$ graft apply --model hybrid --timeout 60 --report-after 1 (in the background)"
"$GRAFT" apply "$T/fix.graft" --pid "$pid" --model hybrid --timeout 60 --report-after 1 --json \
  >"$T/apply.out" 2>"$T/apply.err" &
apply_pid=$!
bg_track $apply_pid

in_transition() { [[ $(list_state "$pid") == applying* ]]; }
wait_until 30 in_transition || fail "graft list never showed the transition"
sleep 1.5  # a few passes: every thread but the holder moves
graft_ok list --pid "$pid"
grep -q "transition (hybrid model, driven by graft pid $apply_pid): [0-9]*/[0-9]* threads moved; pending:" "$T/graft.out" ||
  fail "graft list does not show the transition"
grep -q "inside function \`work'" "$T/graft.out" || fail "graft list does not name the function holding the thread"
graft_ok list --pid "$pid" --json
[[ $(json_get 'any("work" in p["holding"] for p in j["processes"][0]["patches"][0]["transition"]["pending"])' <"$T/graft.out") == true ]] ||
  fail "graft list --json does not show the holder pending"
# The moved threads already run the new code; the holder is still inside the old.
expect t call 17
expect_epoch t new
kill -0 $apply_pid || fail "graft apply ended while the holder was inside work()"

expect t release released
wait_bounded $apply_pid 60 || fail "graft apply failed: $(cat "$T/apply.out" "$T/apply.err")"
sed 's/^/    | /' "$T/apply.out" "$T/apply.err"
grep -q "threads moved" "$T/apply.err" || fail "no progress line on stderr"
grep -q "is still pending: thread .* is inside function \`work'" "$T/apply.err" ||
  fail "no report of the pending thread after --report-after"
[[ $(json_get 'j["results"][0]["ok"]' <"$T/apply.out") == true ]] || fail "apply not ok"
expect_epoch t new
[[ $(list_state "$pid") == applied ]] || fail "the patch is not applied after the transition"
graft_ok revert fix --pid "$pid"
expect_epoch t old
assert_untouched "$pid"
