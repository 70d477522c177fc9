#!/usr/bin/env bash
# ctest-labels: regression
#
# One thread of the process (not the main thread) is traced by strace: graft
# must refuse with a one-line error naming the process and its tracer, and
# leave the process untouched.
#
# REGRESSION TEST: a core bug this suite found, fixed in df0fed3 ("Fix core
# bugs found by the e2e suite"). Before the fix: the refusal works, but the
# error names graft itself as the tracer ("already traced by process <graft's
# own pid> (graft)"): Tracer::seize() asks who traces the main thread, which
# graft has just seized, instead of the thread it failed to seize.
source "$(dirname "$0")/common.sh"

command -v strace >/dev/null || fail "strace is not installed (scripts/test.sh installs it)"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_compute(int x) { return x * 100; }
GRAFT_REPLACE(compute, new_compute);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"

start_target b "$T/basic"
pid=${TPID[b]}
traced_by() { [[ $(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/task/$1/status") == "$2" ]]; }

worker=$(ls "/proc/$pid/task" | grep -vx "$pid" | head -n1)
strace -qq -o /dev/null -p "$worker" &
strace_pid=$!
bg_track $strace_pid
wait_until 10 traced_by "$worker" "$strace_pid" || fail "strace did not attach to thread $worker"
traced_by "$pid" 0 || fail "the main thread should not be traced"
log "strace ($strace_pid) traces thread $worker of pid $pid, not the main thread"

graft_fails 1 apply "$T/fix.graft" --pid "$pid" --timeout 2
[[ $GRAFT_ERROR == *"process $pid"* ]] || fail "the error does not name pid $pid: $GRAFT_ERROR"
[[ $(patch_count "$pid") -eq 0 ]] || fail "graft list shows a patch"
[[ -z $(graft_regions "$pid") ]] || fail "a graft mapping was left behind"
assert_no_wx "$pid"
traced_by "$pid" 0 || fail "graft left the main thread traced"
expect b call "7 0"
log "refused, process untouched"
[[ $GRAFT_ERROR == *"traced by process $strace_pid"* ]] ||
  fail "REGRESSION (df0fed3): the error does not name the tracer, strace ($strace_pid): $GRAFT_ERROR"
