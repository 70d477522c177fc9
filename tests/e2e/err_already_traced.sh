#!/usr/bin/env bash
# A process already being traced (strace -f: all its threads): graft cannot
# attach; a one-line error naming the process and its tracer, a non-zero
# exit, the process untouched. Once the tracer is gone, the same patch
# applies. (err_one_thread_traced.sh: only one thread traced.)
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
# traced_by TID TRACER: thread TID of the target is traced by TRACER (0: none).
traced_by() { [[ $(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/task/$1/status") == "$2" ]]; }

strace -f -qq -o /dev/null -p "$pid" &
strace_pid=$!
bg_track $strace_pid
for tid in $(ls "/proc/$pid/task"); do
  wait_until 10 traced_by "$tid" "$strace_pid" || fail "strace did not attach to thread $tid"
done
log "strace ($strace_pid) traces every thread of pid $pid"

graft_fails 1 apply "$T/fix.graft" --pid "$pid" --timeout 2
[[ $GRAFT_ERROR == *"process $pid"* ]] || fail "the error does not name pid $pid: $GRAFT_ERROR"
[[ $GRAFT_ERROR == *"traced by process $strace_pid"* ]] ||
  fail "the error does not name the tracer, strace ($strace_pid): $GRAFT_ERROR"
graft_fails 1 revert fix --pid "$pid" --timeout 2
# The process is untouched (graft list only reads it: it works while traced).
[[ $(patch_count "$pid") -eq 0 ]] || fail "graft list shows a patch"
[[ -z $(graft_regions "$pid") ]] || fail "a graft mapping was left behind"
assert_no_wx "$pid"

kill -INT $strace_pid
wait $strace_pid 2>/dev/null || true
for tid in $(ls "/proc/$pid/task"); do
  wait_until 10 traced_by "$tid" 0 || fail "strace did not detach from thread $tid"
done
expect b call "7 0"

apply_ok "$T/fix.graft" "$pid"
expect b call "300 0"
