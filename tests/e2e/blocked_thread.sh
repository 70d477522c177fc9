#!/usr/bin/env bash
# A thread blocked inside the function being replaced (in read() on a pipe).
#  1. --timeout 1 while it stays inside: graft refuses, names the thread and
#     the function, exits non-zero, and leaves the process untouched.
#  2. A long timeout, the thread leaves after about 1 s: the apply succeeds
#     once it is out (stop: after retries; hybrid: after checking it again).
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <unistd.h>
extern int block_pipe[2];  /* static in the target */
static int new_wait_here(int x) {
  char c;
  if (read(block_pipe[0], &c, 1) != 1) return -1;
  return x * 1000;
}
GRAFT_REPLACE(wait_here, new_wait_here);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"

start_target b "$T/basic"
pid=${TPID[b]}
expect b probe 13
bytes_before=$(ask b "bytes wait_here")

# --- 1: the thread never leaves while graft waits.
tid=$(ask b block)
[[ $tid -gt 0 ]] || fail "the blocker thread did not enter wait_here"
log "thread $tid is blocked inside wait_here (state $(thread_state "$pid" "$tid"))"
start=$SECONDS
graft_fails 1 apply "$T/fix.graft" --pid "$pid" --timeout 1
[[ $((SECONDS - start)) -le 10 ]] || fail "graft took $((SECONDS - start)) s with --timeout 1"
[[ $GRAFT_ERROR == *"thread $tid"* ]] || fail "the error does not name thread $tid: $GRAFT_ERROR"
[[ $GRAFT_ERROR == *wait_here* ]] || fail "the error does not name wait_here: $GRAFT_ERROR"
[[ $GRAFT_ERROR == *"pid $pid"* ]] || fail "the error does not name pid $pid: $GRAFT_ERROR"
assert_untouched "$pid"
[[ $(ask b "bytes wait_here") == "$bytes_before" ]] || fail "the bytes of wait_here changed"
# The thread is still inside and leaves with the old behaviour.
[[ $(thread_state "$pid" "$tid") == S ]] || fail "thread $tid is not sleeping any more"
expect b release 4
expect b probe 13

# --- 2: the thread leaves after about 1 s; graft, still waiting for it,
# succeeds: the stop model by retrying, hybrid (the default) by checking
# the thread again.
for model in stop hybrid; do
  log "--- $model"
  tid=$(ask b block)
  [[ $tid -gt 0 ]] || fail "the blocker thread did not enter wait_here"
  "$GRAFT" apply "$T/fix.graft" --pid "$pid" --model $model --timeout 20 --json >"$T/apply.json" 2>"$T/apply.err" &
  graft_pid=$!
  bg_track $graft_pid
  sleep 1
  kill -0 $graft_pid 2>/dev/null || fail "graft did not wait for the thread: $(cat "$T/apply.json" "$T/apply.err")"
  log "releasing thread $tid"
  expect b release 4   # the old code, still: the switch waits for the thread
  rc=0
  wait_bounded $graft_pid 30 || rc=$?
  log "graft apply: exit $rc: $(cat "$T/apply.json" "$T/apply.err")"
  [[ $rc -eq 0 ]] || fail "graft apply failed after the thread left (exit $rc)"
  if [[ $model == stop ]]; then
    retries=$(json_get 'j["results"][0]["retries"]' <"$T/apply.json")
    [[ $retries -gt 0 ]] || fail "graft reports $retries retries; the thread was inside for 1 s"
  else
    ms=$(json_get 'int(j["results"][0]["total_ms"])' <"$T/apply.json")
    [[ $ms -ge 900 ]] || fail "graft reports $ms ms; the thread was inside for 1 s"
  fi
  assert_no_wx "$pid"
  expect b probe 10000
  [[ $(ask b "bytes wait_here") != "$bytes_before" ]] || fail "wait_here was not redirected"
  graft_ok revert fix --pid "$pid"
  expect b probe 13
  [[ $(ask b "bytes wait_here") == "$bytes_before" ]] || fail "revert did not restore wait_here"
  assert_untouched "$pid"
done
