#!/usr/bin/env bash
# A PID that does not exist, and a process that exits while graft is applying
# a patch to it (graft is waiting for a thread to leave the function): a
# one-line error naming the process, a non-zero exit, no crash, no hang.
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

# --- no such process: pids are always below pid_max.
nopid=$(cat /proc/sys/kernel/pid_max)
for cmd in "apply $T/fix.graft" "revert fix" "list"; do
  # shellcheck disable=SC2086
  graft_fails any $cmd --pid "$nopid"
  [[ $GRAFT_ERROR == *"$nopid"* ]] || fail "the error does not name pid $nopid: $GRAFT_ERROR"
done

# --- the process exits during the apply.
for round in 1 2 3; do
  start_target b$round "$T/basic"
  pid=${TPID[b$round]}
  tid=$(ask b$round spin)
  [[ $tid -gt 0 ]] || fail "the spinner did not start"
  "$GRAFT" apply "$T/fix.graft" --pid "$pid" --timeout 20 >"$T/apply.out" 2>"$T/apply.err" &
  graft_pid=$!
  bg_track $graft_pid
  # Round 1 kills the target early in the apply, the others while graft retries.
  case $round in
    1) sleep 0.05 ;;
    *) sleep 0.$((3 * round)) ;;
  esac
  log "round $round: killing pid $pid while graft applies"
  kill -KILL "$pid"
  start=$SECONDS
  rc=0
  wait $graft_pid || rc=$?
  log "graft: exit $rc after $((SECONDS - start)) s: $(cat "$T/apply.out" "$T/apply.err")"
  [[ $rc -ne 0 ]] || fail "graft reports success on a process that died"
  [[ $rc -lt 128 ]] || fail "graft crashed (exit $rc)"
  [[ $((SECONDS - start)) -le 5 ]] || fail "graft took $((SECONDS - start)) s to notice the exit"
  out=$(cat "$T/apply.out" "$T/apply.err")
  [[ $(grep -c . <<<"$out") -eq 1 ]] || fail "not a one-line error: $out"
  [[ $out == *"$pid"* ]] || fail "the error does not name pid $pid: $out"
  wait "$pid" 2>/dev/null || true
  unset "TPID[b$round]"
done
