#!/usr/bin/env bash
# ctest-labels: regression
#
# A process killed while graft applies a patch to it, with a thread that never
# leaves the replaced function (it spins inside): graft cannot have switched
# it, so it must fail: a one-line error naming the process, a non-zero exit.
#
# REGRESSION TEST: a core bug this suite found, fixed in df0fed3 ("Fix core
# bugs found by the e2e suite"). Before the fix: graft single-steps the
# spinning thread (stop model, step_out); when the process is killed then,
# the thread vanishes, graft takes that as "the thread left the code", writes
# the jumps into the dying process and reports "applied ... 0 retries",
# exit 0, for a process that is gone. It happens for a third to a half of
# the kills below.
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_spin_here(int x) { return x + 100; }
static int new_compute(int x) { return x * 100; }
GRAFT_REPLACE(spin_here, new_spin_here);
GRAFT_REPLACE(compute, new_compute);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"

wrong=()
for delay in 0.02 0.05 0.05 0.1 0.1 0.15 0.2 0.25 0.3 0.4 0.5 0.6; do
  start_target b "$T/basic"
  pid=${TPID[b]}
  tid=$(ask b spin)
  [[ $tid -gt 0 ]] || fail "the spinner did not start"
  "$GRAFT" apply "$T/fix.graft" --pid "$pid" --timeout 20 >"$T/apply.out" 2>"$T/apply.err" &
  graft_pid=$!
  bg_track $graft_pid
  sleep $delay
  kill -KILL "$pid"
  start=$SECONDS
  rc=0
  wait_bounded $graft_pid 30 || rc=$?
  out=$(cat "$T/apply.out" "$T/apply.err" | without_progress)
  log "killed $delay s after graft started: graft exit $rc: $out"
  [[ $rc -lt 128 ]] || fail "graft crashed (exit $rc)"
  [[ $((SECONDS - start)) -le 5 ]] || fail "graft took $((SECONDS - start)) s to notice the exit"
  [[ $(grep -c . <<<"$out") -eq 1 ]] || fail "not a one-line message: $out"
  [[ $out == *"$pid"* ]] || fail "the message does not name pid $pid: $out"
  [[ $rc -ne 0 ]] || wrong+=("killed after $delay s: $out")
  stop_target b
done
if [[ ${#wrong[@]} -gt 0 ]]; then
  printf 'REGRESSION (df0fed3): graft reported success on a process killed while a thread spun inside the function:\n' >&2
  printf '  %s\n' "${wrong[@]}" >&2
  fail "${#wrong[@]} of 12 applies reported success on a killed process"
fi
