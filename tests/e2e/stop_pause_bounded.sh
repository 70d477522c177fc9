#!/usr/bin/env bash
# ctest-labels: regression
# ctest-run-serial (it loads the CPUs on purpose)
#
# --timeout bounds how long graft may hold the process: with a thread that
# never leaves the function, on a busy machine, `graft apply --timeout 2'
# gives up after about 2 s, and the process is never frozen for long: its
# main thread keeps answering while graft retries.
#
# REGRESSION TEST: a core bug this suite found, fixed in df0fed3 ("Fix core
# bugs found by the e2e suite"). Before the fix: while every other thread is
# stopped, graft single-steps the thread found inside the function, up to
# 2000 instructions per thread and 20000 per stop (stop_model.cc, step_out),
# with no time limit. A thread of low priority (nice 19) on a loaded machine
# takes milliseconds per step: one stop then lasts tens of seconds, the whole
# process is frozen that long, and graft returns "gave up after 2.0 s and 0
# retries" after 20-30 s.
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_spin_here(int x) { return x + 100; }
GRAFT_REPLACE(spin_here, new_spin_here);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"

start_target b "$T/basic"
pid=${TPID[b]}
tid=$(ask b "spin 19")
[[ $tid -gt 0 ]] || fail "the spinner did not start"

# Load: two busy loops per CPU, for 60 s at most, and killed at exit (each
# is a subshell of this script: $! is the loop itself).
for _ in $(seq $((2 * $(nproc)))); do
  (
    end=$((SECONDS + 60))
    while ((SECONDS < end)); do :; done
  ) </dev/null >/dev/null 2>&1 &
  bg_track $!
done

start=$(date +%s%N)
"$GRAFT" apply "$T/fix.graft" --pid "$pid" --timeout 2 --json >"$T/apply.json" 2>"$T/apply.err" &
graft_pid=$!
bg_track $graft_pid
# The main thread must keep answering while graft works (each stop is short).
worst=0
while kill -0 $graft_pid 2>/dev/null; do
  t0=$(date +%s%N)
  ask b tid >/dev/null
  ms=$((($(date +%s%N) - t0) / 1000000))
  ((ms > worst)) && worst=$ms
  (( ($(date +%s%N) - start) / 1000000 < 60000 )) || break
  sleep 0.1
done
rc=0
wait_bounded $graft_pid 30 || rc=$?
total=$((($(date +%s%N) - start) / 1000000))
log "graft exit $rc after $total ms; the target's slowest answer meanwhile: $worst ms"
log "$(cat "$T/apply.json" "$T/apply.err")"
[[ $rc -eq 1 ]] || fail "graft apply should fail (exit 1), exited $rc"
assert_untouched "$pid"
expect b unspin 1
((total < 8000)) || fail "REGRESSION (df0fed3): graft apply --timeout 2 took $total ms"
((worst < 3000)) || fail "REGRESSION (df0fed3): the process was frozen for $worst ms"
