#!/usr/bin/env bash
# ctest-timeout: 240
# backtrace() passes an exit stub: a thread sleeps inside dwell()
# (programs/unwinding.cc) while a hybrid apply points its return at a stub;
# a backtrace from a signal handler that interrupts its sleep, then one
# from a callee of dwell(), must both name dwell()'s real caller; then it
# returns through the stub, which moves it. With the registration left out
# (GRAFT_STUB_UNWIND_INFO=0, the stubs serving anyway) both backtraces end
# at the stub.
source "$(dirname "$0")/common.sh"

cxx -pthread -rdynamic "$PROGRAMS/unwinding.cc" -o "$T/unwinding"
cat >"$T/fix.cc" <<'CXX'
#include <graft/patch.h>
#include <stdexcept>
#include <time.h>
extern "C" void trace_below();
static int new_dwell(int ms, int how) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  if (how == 1) throw std::runtime_error("2");
  if (how == 2) trace_below();
  return 2;
}
GRAFT_REPLACE(dwell, new_dwell);
CXX
build_patch "$T/fix.cc" "$T/unwinding" "$T/fix.graft"

# run_case NAME [ENV...]: a tracer caught in dwell() by a hybrid apply; the
# signal handler's answer, then the stats once the tracer left dwell().
run_case() {
  local name=$1
  shift
  apply_at_stub "$name" tracer "$@"
  SIGNAL=$(ask "$name" signal)
  wait_bounded "$APPLY" 40 || true
  STATS=$(ask "$name" stats)
  log "$name: signal handler's backtrace: $SIGNAL; $STATS; apply: $(tail -c 300 "$T/$name.apply")"
}

run_case s
[[ $SIGNAL == named ]] || fail "the signal handler's backtrace did not name the caller: $SIGNAL"
[[ $STATS =~ traced\ ([0-9]+)\ truncated\ 0$ && ${BASH_REMATCH[1]} -ge 1 ]] || fail "a callee's backtrace: $STATS"
[[ $STATS =~ bad\ 0 ]] || fail "wrong results: $STATS"
json_get 'j["results"][0]["ok"]' <"$T/s.apply" | grep -q true || fail "the apply failed: $(cat "$T/s.apply")"
passed=$(json_get 'j["results"][0]["returns_passed"]' <"$T/s.apply")
[[ $passed -ge 1 ]] || fail "the tracer did not return through its stub (passed=$passed)"
(($(ask s redirected) >= 1)) || fail "the tracer left dwell() without its return at a stub"
expect s call 2
graft_ok revert fix --pid "${TPID[s]}" --timeout 30
assert_untouched "${TPID[s]}"
stop_target s

run_case n GRAFT_STUB_UNWIND_INFO=0
[[ $SIGNAL == truncated ]] ||
  fail "without the stubs' unwind information the signal handler's backtrace was: $SIGNAL (a test that proves nothing)"
[[ $STATS =~ truncated\ ([0-9]+)$ && ${BASH_REMATCH[1]} -ge 1 ]] ||
  fail "without the stubs' unwind information a callee's backtrace was complete: $STATS"
log "without the unwind information: both backtraces end at the stub"
stop_target n
log "ok"
