#!/usr/bin/env bash
# ctest-timeout: 240
# pthread_cancel of a thread whose return graft pointed at an exit stub: a
# C++ thread sleeps inside dwell() (programs/unwinding.cc), below a cleanup
# handler and a destructor in its caller, while a hybrid apply points its
# return at a stub. The forced unwind passes the stub: both run, the thread
# ends cancelled, the transition completes and the revert leaves nothing.
# With the registration left out (GRAFT_STUB_UNWIND_INFO=0, the stubs
# serving anyway) the unwind ends at the stub and neither runs.
source "$(dirname "$0")/common.sh"

cxx -pthread -rdynamic "$PROGRAMS/unwinding.cc" -o "$T/unwinding"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <time.h>
static int new_dwell(int ms, int how) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  (void)how;
  while (nanosleep(&ts, &ts) != 0) {
  }
  return 2;
}
GRAFT_REPLACE(dwell, new_dwell);
C
build_patch "$T/fix.c" "$T/unwinding" "$T/fix.graft"

# run_case NAME [ENV...]: the canceller caught in dwell() by a hybrid
# apply, then cancelled; its answer in CANCEL.
run_case() {
  local name=$1
  shift
  apply_at_stub "$name" canceller "$@"
  CANCEL=$(ask "$name" cancel)
  wait_bounded "$APPLY" 40 || true
  log "$name: $CANCEL; $(ask "$name" stats); apply: $(tail -c 300 "$T/$name.apply")"
}

run_case s
[[ $CANCEL == "cancelled 1 cleanups 2" ]] || fail "the cancellation did not run the caller's cleanups: $CANCEL"
json_get 'j["results"][0]["ok"]' <"$T/s.apply" | grep -q true || fail "the apply failed: $(cat "$T/s.apply")"
[[ $(ask s stats) =~ bad\ 0 ]] || fail "wrong results: $(ask s stats)"
expect s call 2
graft_ok revert fix --pid "${TPID[s]}" --timeout 30
assert_untouched "${TPID[s]}"
stop_target s

run_case n GRAFT_STUB_UNWIND_INFO=0
[[ $CANCEL == "cancelled 1 cleanups 0" ]] ||
  fail "without the stubs' unwind information the cancellation gave: $CANCEL (a test that proves nothing)"
log "without the unwind information: the forced unwind ends at the stub, no cleanup runs"
stop_target n
log "ok"
