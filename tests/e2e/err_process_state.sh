#!/usr/bin/env bash
# A process graft cannot or must not change is refused with its real cause,
# at once, without touching it, and with the same error code in --json:
# stopped by job control (SIGSTOP), a zombie, a kernel thread, pid 1, a
# seccomp filter that forbids memfd_create, memory-deny-write-execute
# (PR_SET_MDWE). "process left unchanged" is said only where graft checked
# it. (Before: a SIGSTOPped target took 10 s whatever --timeout, said
# "process left unchanged" and left a `loading' record and three graft
# mappings; the others said "No such process" or "Permission denied".)
source "$(dirname "$0")/common.sh"

build_basic_with_compute_fix
cc "$PROGRAMS/confine.c" -o "$T/confine"

# refused PID CODE PATTERN: apply and revert fail at once with exit 1, the
# message matching PATTERN, and error_code CODE in --json.
refused() {
  local pid=$1 code=$2 pattern=$3 cmd start
  for cmd in "apply $T/fix.graft" "revert fix" "recover"; do
    start=$SECONDS
    # shellcheck disable=SC2086
    graft_fails 1 $cmd --pid "$pid" --timeout 1
    [[ $GRAFT_ERROR == $pattern ]] || fail "graft $cmd on pid $pid: unexpected error: $GRAFT_ERROR"
    [[ $((SECONDS - start)) -le 2 ]] || fail "graft $cmd took $((SECONDS - start)) s to refuse pid $pid"
    # shellcheck disable=SC2086
    graft_fails 1 $cmd --pid "$pid" --json
    [[ $(json_get 'j["results"][0]["error_code"]' <"$T/graft.out") == "$code" ]] ||
      fail "graft $cmd --json on pid $pid: error_code is not $code"
  done
}

log "--- stopped by job control"
start_target b "$T/basic"
pid=${TPID[b]}
kill -STOP "$pid"
wait_until 5 [ "$(thread_state "$pid" "$pid")" = T ] || fail "pid $pid did not stop"
refused "$pid" process_stopped "*stopped by job control*kill -CONT $pid*"
kill -CONT "$pid"
assert_untouched "$pid"
expect b call "7 0"
stop_target b

log "--- a zombie"
sh -c 'sleep 0 & exec sleep 60' &
parent=$!
bg_track $parent
wait_until 5 pgrep -P $parent >/dev/null || fail "no child of $parent"
zombie=$(pgrep -P $parent)
wait_until 5 [ "$(thread_state "$zombie" "$zombie")" = Z ] || fail "pid $zombie is no zombie"
refused "$zombie" zombie "*is a zombie*"

log "--- a kernel thread (kthreadd)"
refused 2 kernel_thread "*kthreadd*is a kernel thread*"

log "--- pid 1 (refused before anything reads it)"
graft_fails 1 apply "$T/fix.graft" --pid 1
[[ $GRAFT_ERROR == *"process 1 is the init process"* ]] || fail "unexpected error: $GRAFT_ERROR"

log "--- a seccomp filter forbids memfd_create"
start_target s "$T/confine" seccomp "$T/basic"
pid=${TPID[s]}
graft_fails 1 apply "$T/fix.graft" --pid "$pid" --json
[[ $(json_get 'j["results"][0]["error_code"]' <"$T/graft.out") == seccomp ]] || fail "error_code is not seccomp"
[[ $GRAFT_ERROR == *"seccomp filter (Seccomp: 2 in /proc/$pid/status)"* ]] || fail "unexpected error: $GRAFT_ERROR"
[[ $(json_get 'j["results"][0]["unchanged"]' <"$T/graft.out") == true ]] || fail "not verified unchanged"
assert_untouched "$pid"
expect s call "7 0"

log "--- memory-deny-write-execute"
if "$T/confine" mdwe /bin/true 2>/dev/null; then
  start_target m "$T/confine" mdwe "$T/basic"
  pid=${TPID[m]}
  graft_fails 1 apply "$T/fix.graft" --pid "$pid"
  [[ $GRAFT_ERROR == *"PR_SET_MDWE"*"; process left unchanged" ]] || fail "unexpected error: $GRAFT_ERROR"
  assert_untouched "$pid"
  expect m call "7 0"
else
  log "this kernel has no PR_SET_MDWE: not tested"
fi
