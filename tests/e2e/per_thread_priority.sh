#!/usr/bin/env bash
# ctest-labels: regression
# graft raises itself to real-time priority (SCHED_FIFO) only for the stop
# model's global stop; under a per-thread model it would hold a core the
# target's threads need, so no thread of graft runs at SCHED_FIFO.
# (Regression: main() raised the whole process before --model was known,
# and the tracing thread copied that policy.) The scheduling policy of each
# of graft's threads is read while it waits on a thread held in work().
source "$(dirname "$0")/common.sh"

build_transition_target
# The replacement holds a caller of work(1000) inside the new code.
cat >"$T/hold.c" <<'C'
#include <graft/patch.h>
#include <sched.h>
extern volatile int holding;
extern volatile int hold_arrived;
static int new_work(int x) {
  if (x == 1000) {
    hold_arrived = 1;
    while (holding) sched_yield();
  }
  return 3 * x + 2;
}
GRAFT_REPLACE(work, new_work);
C
build_patch "$T/hold.c" "$T/transition" "$T/hold.graft"
start_target t "$T/transition"
pid=${TPID[t]}
expect t hold holding

# policies GRAFT_PID: the scheduling policy of each of its threads.
policies() {
  local task
  for task in /proc/"$1"/task/*; do
    chrt -p "${task##*/}" 2>/dev/null | sed -n 's/.*scheduling policy: //p'
  done | sort | uniq -c | tr -s ' \n' ' '
}

# policy_during MODEL REVERT?: graft's threads' policies 1 s into an apply
# (or revert) that waits for the held thread.
policy_during() {
  local model=$1
  shift
  "$GRAFT" "$@" --pid "$pid" --model "$model" --timeout 2.5 >"$T/bg.out" 2>&1 &
  local gp=$!
  bg_track $gp
  sleep 1
  local p
  p=$(policies $gp)
  wait_bounded $gp 30 || true
  log "$*: --model $model: graft's threads: $p ($(cat "$T/bg.out"))"
  printf '%s\n' "$p"
}

for model in hybrid lazy; do
  p=$(policy_during $model apply "$T/fix.graft" | tail -1)
  [[ -n ${p// /} ]] || fail "could not read the policy of graft's threads: $p"
  [[ $p != *SCHED_FIFO* ]] || fail "apply --model $model runs at real-time priority: $p"
done
# The stop model does raise its tracing thread (the observation works).
p=$(policy_during stop apply "$T/fix.graft" | tail -1)
[[ $p == *SCHED_FIFO* ]] || fail "apply --model stop does not run at real-time priority: $p"
assert_untouched "$pid"

# A revert of a per-thread patch, held by a thread in the new code.
expect t release released
apply_ok "$T/hold.graft" "$pid" --model hybrid --timeout 10
expect t hold holding
p=$(policy_during hybrid revert hold | tail -1)
[[ -n ${p// /} ]] || fail "could not read the policy of graft's threads: $p"
[[ $p != *SCHED_FIFO* ]] || fail "revert --model hybrid runs at real-time priority: $p"
expect t release released
graft_ok revert hold --pid "$pid" --timeout 10
assert_untouched "$pid"
