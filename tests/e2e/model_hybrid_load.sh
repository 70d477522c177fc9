#!/usr/bin/env bash
# The hybrid per-thread model under load: eight threads call the replaced
# function in a tight loop while graft applies it with `--model hybrid' (no
# global stop: each thread is stopped alone and moved when its stack is
# clean). No call may return garbage; every call that starts after `graft
# apply' returned gives the new result; the entry ends as a direct jump; the
# JSON reports single-thread stalls and no global pause. Reverted (stop
# model) and applied again, several times.
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
original=$(ask t "bytes compute")

# check_epoch old|new: every call started after the last graft command
# returned gives that result, and none returned garbage.
check_epoch() {
  local want=$1 e s old new bad min
  e=$(ask t mark)
  s=$(ask t "stats $e")
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
for round in 1 2 3; do
  log "round $round"
  apply_ok "$T/fix.graft" "$pid" --model hybrid --timeout 20 --json
  r='j["results"][0]'
  [[ $(json_get "$r[\"ok\"]" <"$T/graft.out") == true ]] || fail "apply not ok"
  [[ $(json_get "$r[\"model\"]" <"$T/graft.out") == hybrid ]] || fail "model is not hybrid"
  [[ $(json_get "$r[\"threads\"]" <"$T/graft.out") -eq 9 ]] || fail "the transition did not see 9 threads"
  [[ $(json_get "$r[\"pause_ms\"]" <"$T/graft.out") == 0.0 ]] || fail "a per-thread apply reported a global pause"
  [[ $(json_get "$r[\"stalls\"] >= 9" <"$T/graft.out") == true ]] || fail "fewer single-thread stops than threads"
  log "longest single-thread stall $(json_get "$r[\"stall_max_us\"]" <"$T/graft.out") us, p99 $(json_get "$r[\"stall_p99_us\"]" <"$T/graft.out") us, transition $(json_get "$r[\"transition_ms\"]" <"$T/graft.out") ms, $(json_get "$r[\"breakpoint_hits\"]" <"$T/graft.out") breakpoint traps"
  check_epoch new
  # The transition is over: the entry jumps straight to the replacement.
  graft_ok list --pid "$pid" --json
  [[ $(json_get 'j["processes"][0]["patches"][0]["state"]' <"$T/graft.out") == applied ]] ||
    fail "the patch is not in state applied after the transition"
  now=$(ask t "bytes compute")
  [[ ${now:0:2} == e9 ]] || fail "compute does not start with a jmp: $now"
  graft_ok revert fix --pid "$pid" --timeout 20
  check_epoch old
  [[ $(ask t "bytes compute") == "$original" ]] || fail "compute's entry is not restored after the revert"
  assert_untouched "$pid"
done
[[ $(ask t bad) -eq 0 ]] || fail "some calls returned garbage during the transitions"
[[ $(ask t threads) -eq 8 ]] || fail "a worker thread is gone"
