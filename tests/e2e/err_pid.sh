#!/usr/bin/env bash
# A PID that does not exist, and a process that exits while graft is applying
# a patch to it (graft is retrying: a thread is blocked inside the function):
# a one-line error naming the process, a non-zero exit, no crash, no hang.
# (err_pid_exits_while_stepping.sh: the same while graft single-steps a
# thread.)
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <unistd.h>
extern int block_pipe[2];
static int new_wait_here(int x) {
  char c;
  if (read(block_pipe[0], &c, 1) != 1) return -1;
  return x * 1000;
}
static int new_compute(int x) { return x * 100; }
GRAFT_REPLACE(wait_here, new_wait_here);
GRAFT_REPLACE(compute, new_compute);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"

# --- no such process: pids are always below pid_max.
nopid=$(cat /proc/sys/kernel/pid_max)
for cmd in "apply $T/fix.graft" "revert fix" "list"; do
  # shellcheck disable=SC2086
  graft_fails any $cmd --pid "$nopid"
  [[ $GRAFT_ERROR == *"$nopid"* ]] || fail "the error does not name pid $nopid: $GRAFT_ERROR"
done

# --- the process exits during the apply, at different moments.
for delay in 0.02 0.1 0.3 0.6; do
  start_target b "$T/basic"
  pid=${TPID[b]}
  tid=$(ask b block)
  [[ $tid -gt 0 ]] || fail "the blocker thread did not enter wait_here"
  "$GRAFT" apply "$T/fix.graft" --pid "$pid" --timeout 20 >"$T/apply.out" 2>"$T/apply.err" &
  graft_pid=$!
  bg_track $graft_pid
  sleep $delay
  log "killing pid $pid $delay s after graft started"
  kill -KILL "$pid"
  start=$SECONDS
  rc=0
  wait_bounded $graft_pid 30 || rc=$?
  out=$(cat "$T/apply.out" "$T/apply.err" | without_progress)
  log "graft: exit $rc after $((SECONDS - start)) s: $out"
  [[ $rc -ne 0 ]] || fail "graft reports success on a process killed while a thread was inside"
  [[ $rc -lt 128 ]] || fail "graft crashed (exit $rc)"
  [[ $((SECONDS - start)) -le 5 ]] || fail "graft took $((SECONDS - start)) s to notice the exit"
  [[ $(grep -c . <<<"$out") -eq 1 ]] || fail "not a one-line error: $out"
  [[ $out == *"$pid"* ]] || fail "the error does not name pid $pid: $out"
  stop_target b
done
