#!/usr/bin/env bash
# hybrid with threads created and exiting during the transition: a churner
# thread keeps starting short-lived threads that call work() (PTRACE_O_TRACECLONE
# hands each to graft before its first instruction; they start in the new
# universe), while eight workers call work() in tight loops. No crash, no
# garbage, every call after the apply is new; then the same for the revert.
source "$(dirname "$0")/common.sh"

build_transition_target
start_target t "$T/transition"
pid=${TPID[t]}
expect t "load 8" ok
expect t churn ok
sleep 0.3
for round in 1 2 3; do
  before=$(ask t churned)
  apply_ok "$T/fix.graft" "$pid" --model hybrid --timeout 30 --json
  log "stalls: max $(json_get 'j["results"][0]["stall_max_us"]' <"$T/graft.out") us, p99 $(json_get 'j["results"][0]["stall_p99_us"]' <"$T/graft.out") us"
  expect_epoch t new
  graft_ok revert fix --pid "$pid" --timeout 30
  expect_epoch t old
  assert_untouched "$pid"
  after=$(ask t churned)
  [[ $after -gt $before ]] || fail "no short-lived thread completed during round $round ($before -> $after)"
done
[[ $(ask t threads) -eq 8 ]] || fail "a worker is gone"
