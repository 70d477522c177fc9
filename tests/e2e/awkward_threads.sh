#!/usr/bin/env bash
# Threads where a live patcher least wants them, under hybrid (the default)
# and stop:
#  - a signal handler running on an alternate signal stack is inside a
#    replaced function at apply time: the stack check follows the signal
#    frame; a short timeout refuses naming the thread, a release during the
#    wait lets the apply finish;
#  - a thread blocked in vfork() while its child sleeps: the thread cannot
#    be stopped until the child exits; the apply waits for it or refuses
#    with the reason, and the child and its parent are unharmed;
#  - 256 threads calling the replaced function on 2 cores: hybrid and stop
#    apply and revert (stop runs each thread it catches inside the function
#    alone until the function returns); no wrong result.
# ctest-timeout: 300
# ctest-run-serial (256 busy threads would starve the tests beside it)
source "$(dirname "$0")/common.sh"

cc -fno-ipa-ra -pthread "$PROGRAMS/awkward.c" -o "$T/awkward"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
int work(int x);
static int new_work(int x) { return x + 2; }
static int new_hold_in(int x) { return work(x); }
GRAFT_REPLACE(work, new_work);
GRAFT_REPLACE(hold_in, new_hold_in);
C
build_patch "$T/fix.c" "$T/awkward" "$T/fix.graft"
start_target a "$T/awkward"
pid=${TPID[a]}
expect a call 6

for model in hybrid stop; do
  log "--- $model: a signal handler on an alternate stack inside hold_in()"
  tid=$(ask a altstack)
  graft_fails 1 apply "$T/fix.graft" --pid "$pid" --model $model --timeout 1
  [[ $GRAFT_ERROR == *"thread $tid"* && $GRAFT_ERROR == *hold_in* ]] ||
    fail "$model: the refusal does not name thread $tid in hold_in: $GRAFT_ERROR"
  assert_untouched "$pid"
  "$GRAFT" apply "$T/fix.graft" --pid "$pid" --model $model --timeout 30 >"$T/apply.out" 2>&1 &
  gp=$!
  bg_track $gp
  sleep 1
  kill -0 $gp 2>/dev/null || fail "$model: graft did not wait for the handler: $(cat "$T/apply.out")"
  expect a release released
  wait_bounded $gp 40 || fail "$model: the apply failed after the handler left: $(cat "$T/apply.out")"
  expect a call 7
  [[ $(ask a handled) -ge 1 ]] || fail "$model: the handler did not return from work()"
  graft_ok revert fix --pid "$pid"
  expect a call 6
  assert_untouched "$pid"
done

for model in hybrid stop; do
  log "--- $model: a thread blocked in vfork()"
  before=$(ask a vforked)
  expect a "vfork 3" started
  sleep 0.3
  start=$SECONDS
  apply_ok "$T/fix.graft" "$pid" --model $model --timeout 20
  log "$model: applied after $((SECONDS - start)) s: $(cat "$T/graft.out")"
  expect a call 7
  graft_ok revert fix --pid "$pid"
  after_ok() { [[ $(ask a vforked) != "$before" ]]; }
  wait_until 10 after_ok || fail "$model: the vfork child never ended"
  log "$model: $(ask a vforked)"
  [[ $(ask a vforked) == "children "*" status-ok "* ]] || fail "unexpected $(ask a vforked)"
  read -r _ c _ k <<<"$(ask a vforked)"
  [[ $c -eq $k ]] || fail "$model: a vfork child did not exit cleanly: $(ask a vforked)"
  assert_untouched "$pid"
  # Refused, quickly, when the child outlives the timeout.
  expect a "vfork 6" started
  sleep 0.3
  graft_fails 1 apply "$T/fix.graft" --pid "$pid" --model $model --timeout 1
  log "$model: $GRAFT_ERROR"
  [[ $GRAFT_ERROR == *"vfork"* ]] || fail "$model: the refusal does not say the thread is in vfork(): $GRAFT_ERROR"
  assert_untouched "$pid"
  sleep 6
done

log "--- 256 busy threads"
[[ $(ask a "busy 256") -eq 256 ]] || fail "could not start 256 threads"
apply_ok "$T/fix.graft" "$pid" --model hybrid --timeout 60 --json
log "hybrid: $(json_get '{k: j["results"][0][k] for k in ("total_ms", "transition_ms", "threads")}' <"$T/graft.out")"
expect a call 7
graft_ok revert fix --pid "$pid" --timeout 60
expect a call 6
# The stop model finds some of the 256 threads inside work() at every stop:
# each runs alone, the others stopped, until work() returns to it.
graft_ok apply "$T/fix.graft" --pid "$pid" --model stop --timeout 20 --json
log "stop: $(json_get '{k: j["results"][0][k] for k in ("total_ms", "retries", "run_out", "max_pause_ms")}' <"$T/graft.out")"
[[ $(json_get 'j["results"][0]["run_out"]' <"$T/graft.out") -gt 0 ]] ||
  fail "stop: no thread was caught inside work() and run out of it"
expect a call 7
graft_ok revert fix --pid "$pid" --model stop --timeout 20 --json
log "stop revert: $(json_get '{k: j["results"][0][k] for k in ("total_ms", "retries", "run_out", "max_pause_ms")}' <"$T/graft.out")"
expect a call 6
s=$(ask a stats)
log "busy threads: $s"
[[ $s == *" bad 0" ]] || fail "wrong results: $s"
assert_untouched "$pid"
log "ok"
