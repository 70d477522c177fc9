#!/usr/bin/env bash
# lazy (kGraft): threads move only at their safe points. A thread blocked in
# read() and the main thread (blocked reading commands) are moved by graft
# with a clean stack; threads that call graft_quiescent() (libgraft-rt) move
# themselves: one that spins between calls, and eight that call work() and
# graft_quiescent() in tight loops during the transition. A thread that
# stays inside work() keeps a lazy transition waiting until the timeout
# rolls it back. Threads that make system calls all the time but never
# block in one (getppid()), more of them than cores, are caught at a call.
source "$(dirname "$0")/common.sh"

build_transition_target -DWITH_RUNTIME
start_target t "$T/transition"
pid=${TPID[t]}
expect t sleeper ok
expect t quiescent ok
expect t "qload 8" ok  # under load: 8 threads call work() in tight loops
expect t wake 7
sleep 0.2

apply_ok "$T/fix.graft" "$pid" --model lazy --timeout 20 --json
[[ $(json_get 'j["results"][0]["model"]' <"$T/graft.out") == lazy ]] || fail "model is not lazy"
expect t call 17
expect t wake 8
moved=$(ask t moved)
log "graft_quiescent() moved its thread $moved time(s)"
[[ $moved -ge 9 ]] || fail "fewer than 9 threads moved themselves in graft_quiescent()"
expect_epoch t new
graft_ok revert fix --pid "$pid"
expect t wake 7
assert_untouched "$pid"

# A thread held inside work() (spinning, sometimes in sched_yield) is never
# at a safe point: lazy waits for it, then rolls back.
expect t hold holding
rc=0
graft apply "$T/fix.graft" --pid "$pid" --model lazy --timeout 1.5 || rc=$?
[[ $rc -eq 1 ]] || fail "lazy apply with a held thread exited with $rc, expected 1"
grep -q "FAILED: .*still pending.*rolled back" "$T/graft.out" ||
  fail "unexpected result: $(cat "$T/graft.out")"
assert_untouched "$pid"
expect t call 16
expect t release released
expect_epoch t old
stop_target t

# Never blocked, always about to make a system call: sampled, such threads
# are seen running every time; graft catches each at its next call.
start_target s "$T/transition"
pid=${TPID[s]}
expect s "syscalls 4" ok
sleep 0.2
apply_ok "$T/fix.graft" "$pid" --model lazy --timeout 20 --json
log "lazy with 4 threads in getppid() loops: $(json_get 'j["results"][0]["transition_ms"]' <"$T/graft.out") ms, $(json_get 'j["results"][0]["stalls"]' <"$T/graft.out") stops, longest $(json_get 'j["results"][0]["stall_max_us"]' <"$T/graft.out") us"
expect s call 17
expect_epoch s new
graft_ok revert fix --pid "$pid" --model lazy
expect s call 16
expect_epoch s old
assert_untouched "$pid"
stop_target s
log ok
