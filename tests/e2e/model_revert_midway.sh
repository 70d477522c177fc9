#!/usr/bin/env bash
# A transition reversed midway: while `graft apply --model hybrid' waits for
# a thread held inside work(), `graft revert' (another graft) asks it to
# reverse. The apply moves every thread back to the old code, restores the
# entry, unmaps the region and reports the reversal; the revert succeeds;
# the process is as before. A timeout rolls back the same way.
source "$(dirname "$0")/common.sh"

build_transition_target
start_target t "$T/transition"
pid=${TPID[t]}
expect t "load 4" ok
original=$(ask t "bytes work")
expect t hold holding

"$GRAFT" apply "$T/fix.graft" --pid "$pid" --model hybrid --timeout 60 --json \
  >"$T/apply.out" 2>"$T/apply.err" &
apply_pid=$!
bg_track $apply_pid
in_transition() { [[ $(list_state "$pid") == applying* ]]; }
wait_until 30 in_transition || fail "graft list never showed the transition"
sleep 0.5
expect t call 17  # the main thread has moved: the transition is midway

graft_ok revert fix --pid "$pid" --timeout 20
grep -q "reversed its transition" "$T/graft.out" || fail "revert does not say it reversed the transition"
wait_bounded $apply_pid 30 && fail "graft apply succeeded although it was reverted"
sed 's/^/    | /' "$T/apply.out" "$T/apply.err"
[[ $(json_get 'j["results"][0]["rolled_back"]' <"$T/apply.out") == true ]] || fail "apply does not report the roll-back"
grep -q "graft revert" "$T/apply.out" || fail "apply does not say why it rolled back"
assert_untouched "$pid"
[[ $(ask t "bytes work") == "$original" ]] || fail "work()'s entry is not restored"
expect t call 16
expect_epoch t old

# Timeout: the holder never leaves within --timeout; everything rolls back.
# (stderr has progress lines: not graft_fails' one-line rule)
rc=0
graft apply "$T/fix.graft" --pid "$pid" --model hybrid --timeout 1.5 || rc=$?
[[ $rc -eq 1 ]] || fail "apply with a held thread exited with $rc, expected 1"
grep -q "FAILED: .*still pending.*inside function \`work'.*rolled back" "$T/graft.out" ||
  fail "unexpected result: $(cat "$T/graft.out")"
assert_untouched "$pid"
[[ $(ask t "bytes work") == "$original" ]] || fail "work()'s entry is not restored after the timeout"
expect t release released
expect_epoch t old
