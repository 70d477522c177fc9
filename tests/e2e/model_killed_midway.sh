#!/usr/bin/env bash
# graft killed (SIGKILL) in the middle of writing an entry during a
# per-thread transition: right after the int3 at the entry, and right after
# the tail of the jump (the int3 still first), both when the entries go to
# the gates and when they go to the new code. Eight threads call the
# function all the while. Without graft to trap the int3, graft's SIGTRAP
# handler sends each thread to the gate: no thread dies, no call returns
# garbage. `graft recover' then rolls the transition back, removes the
# handler (the target's own SIGTRAP action is back) and the region.
source "$(dirname "$0")/common.sh"

build_transition_target
start_target t "$T/transition"
pid=${TPID[t]}
ask t "load 8" >/dev/null
eight() { [[ $(ask t threads) -eq 8 ]]; }
wait_until 30 eight || fail "the 8 workers did not start"
original=$(ask t "bytes work")
expect_epoch t old

# SIGTRAP (5) is bit 4 of the caught-signals mask.
catches_sigtrap() { (( 0x$(awk '/^SigCgt:/ { print $2 }' "/proc/$pid/status") & 0x10 )); }
catches_sigtrap && fail "the target catches SIGTRAP before any patch"

for point in entry-int3:1 entry-tail:1 entry-int3:2 entry-tail:2; do
  rc=0
  GRAFT_FAULT=$point "$GRAFT" apply "$T/fix.graft" --pid "$pid" --model hybrid --timeout 20 \
    >"$T/graft.out" 2>&1 || rc=$?
  [[ $rc -eq 137 ]] || fail "graft was not killed at $point (exit $rc): $(cat "$T/graft.out")"
  bytes=$(ask t "bytes work")
  log "$point: graft killed; entry of work() now: $bytes"
  [[ $bytes == cc* ]] || fail "$point: expected graft's int3 at the entry, found $bytes"
  catches_sigtrap || fail "$point: graft's SIGTRAP handler is not installed"
  # Every thread keeps calling work() through the int3: each call traps to
  # the handler, which sends it to the gate (its universe's code).
  s=$(epoch_stats t)
  log "$point: calls with nobody tracing the target: $s"
  [[ $s == *" bad=0" ]] || fail "$point: calls returned garbage: $s"
  [[ $(ask t call) =~ ^1[67]$ ]] || fail "$point: the main thread's call failed"
  kill -0 "$pid" || fail "$point: the target died"
  [[ -z $(awk '/^TracerPid:/ && $2 != 0' "/proc/$pid/status") ]] || fail "$point: still traced"

  graft_ok recover --pid "$pid"
  grep -q "rolled back" "$T/graft.out" || fail "$point: recover did not roll back: $(cat "$T/graft.out")"
  assert_untouched "$pid"
  [[ $(ask t "bytes work") == "$original" ]] || fail "$point: the entry of work() was not restored"
  catches_sigtrap && fail "$point: graft's SIGTRAP handler is still installed after recover"
  expect_epoch t old
done

# A full per-thread apply removes its handler when the transition ends.
apply_ok "$T/fix.graft" "$pid" --model hybrid --timeout 20
expect_epoch t new
catches_sigtrap && fail "the handler stayed installed after a completed transition"
graft_ok revert fix --pid "$pid"
assert_untouched "$pid"
expect_epoch t old
log "ok"
