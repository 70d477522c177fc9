#!/usr/bin/env bash
# Eight threads call the patched function in a tight loop while graft applies
# and reverts the patch, several times over. No call may return garbage, and
# every call that starts after `graft apply' returned gives the new result
# (after `graft revert' returned: the old one) in every thread.
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/threads.c" -o "$T/threads"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern int counter;
int helper(int x);
static int new_compute(int x) {
  __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
  return helper(x) * 100;
}
GRAFT_REPLACE(compute, new_compute);
C
build_patch "$T/fix.c" "$T/threads" "$T/fix.graft"

start_target t "$T/threads"
pid=${TPID[t]}
eight_threads() { [[ $(ask t threads) -eq 8 ]]; }
wait_until 30 eight_threads || fail "the 8 threads did not start"
[[ $(ls "/proc/$pid/task" | wc -l) -eq 9 ]] || fail "expected 9 threads in pid $pid"

# stats E: old=... new=... bad=... min=...; checks every thread ran in epoch E.
check_epoch() {
  local want=$1 e s old new bad min
  e=$(ask t mark)
  s=$(ask t "stats $e")
  read -r old new bad min <<<"${s//[a-z]=/}"
  old=${s#old=}; old=${old%% *}
  new=${s#*new=}; new=${new%% *}
  bad=${s#*bad=}; bad=${bad%% *}
  min=${s#*min=}
  log "epoch $e: $s"
  [[ $min -ge 2000 ]] || fail "epoch $e: a thread made only $min calls (stuck or dead?): $s"
  [[ $bad -eq 0 ]] || fail "epoch $e: $bad calls returned garbage: $s"
  if [[ $want == new ]]; then
    [[ $old -eq 0 ]] || fail "epoch $e: $old calls started after the apply returned the old result: $s"
  else
    [[ $new -eq 0 ]] || fail "epoch $e: $new calls started after the revert returned the new result: $s"
  fi
}

check_epoch old
retries=0
for round in 1 2 3 4 5; do
  log "round $round"
  apply_ok "$T/fix.graft" "$pid" --timeout 20 --json
  [[ $(json_get 'j["results"][0]["ok"]' <"$T/graft.out") == true ]] || fail "apply not ok"
  [[ $(json_get 'j["results"][0]["threads"]' <"$T/graft.out") -eq 9 ]] || fail "apply did not see 9 threads"
  retries=$((retries + $(json_get 'j["results"][0]["retries"]' <"$T/graft.out")))
  check_epoch new
  graft_ok revert fix --pid "$pid" --timeout 20 --json
  retries=$((retries + $(json_get 'j["results"][0]["retries"]' <"$T/graft.out")))
  check_epoch old
  assert_untouched "$pid"
done
# The threads spend about a fifth of their time inside compute(), so stops
# find some inside: graft runs them alone until compute() returns (JSON
# `run_out'), or retries.
log "$retries retries over the 10 switches"
[[ $(ask t bad) -eq 0 ]] || fail "some calls returned garbage during the switches"
[[ $(ask t threads) -eq 8 ]] || fail "a worker thread is gone"
