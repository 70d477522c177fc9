#!/usr/bin/env bash
# ctest-timeout: 240
# The stop model's return trap (arch/x86_64/stop_stub.h): a thread a stop
# finds inside a replaced function runs alone, every other thread stopped,
# until that function returns.
#  1) Two threads inside crunch() 99.9% of the time (programs/crunch.c, 3 ms
#     per call): with time slices only (GRAFT_RETURN_STUBS=0) no stop finds
#     them outside and the apply is refused, the process unchanged; with the
#     trap, apply and revert succeed, no wrong result.
#  2) graft killed (fault point return-trapped) right after it pointed a
#     cruncher's return at the stub: the thread returns through the stub on
#     its own, and `graft recover' rolls the apply back. (Recovered while
#     the thread is still inside: tests/e2e/returns_killed.sh.)
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/crunch.c" -o "$T/crunch"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <time.h>
static int new_crunch(int us) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  long long until = a.tv_sec * 1000000LL + a.tv_nsec / 1000 + us;
  do clock_gettime(CLOCK_MONOTONIC, &b);
  while (b.tv_sec * 1000000LL + b.tv_nsec / 1000 < until);
  return 2;
}
GRAFT_REPLACE(crunch, new_crunch);
C
build_patch "$T/fix.c" "$T/crunch" "$T/fix.graft"

start_target c "$T/crunch"
pid=${TPID[c]}
[[ $(ask c "start 2") -eq 2 ]] || fail "the crunchers did not start"
stats() { ask c stats; }
field() { local s; s=$(stats); s=${s#*"$1 "}; echo "${s%% *}"; }

log "--- 1) time slices, then the return trap"
rc=0
GRAFT_RETURN_STUBS=0 graft apply "$T/fix.graft" --pid "$pid" --model stop --timeout 2 --json || rc=$?
[[ $rc -eq 1 && $(json_get 'j["results"][0]["error"]' <"$T/graft.out") == *"inside function \`crunch'"* ]] ||
  fail "with time slices only, the stop model should give up on crunch() (exit $rc)"
assert_untouched "$pid"
graft_ok apply "$T/fix.graft" --pid "$pid" --model stop --timeout 20 --json
log "apply: $(json_get '{k: j["results"][0][k] for k in ("total_ms", "retries", "run_out", "pause_ms", "max_pause_ms")}' <"$T/graft.out")"
[[ $(json_get 'j["results"][0]["run_out"]' <"$T/graft.out") -ge 1 ]] || fail "no thread was run out of crunch()"
expect c call 2
n=$(field new)
wait_until 10 eval '(( $(field new) > n + 10 ))' || fail "the crunchers do not run the new crunch(): $(stats)"
graft_ok revert fix --pid "$pid" --model stop --timeout 20 --json
log "revert: $(json_get '{k: j["results"][0][k] for k in ("total_ms", "retries", "run_out", "pause_ms", "max_pause_ms")}' <"$T/graft.out")"
[[ $(json_get 'j["results"][0]["run_out"]' <"$T/graft.out") -ge 1 ]] || fail "no thread was run out of new_crunch()"
expect c call 1
assert_untouched "$pid"

log "--- 2) killed with a cruncher's return leading to the stub"
rc=0
GRAFT_FAULT=return-trapped "$GRAFT" apply "$T/fix.graft" --pid "$pid" --model stop --timeout 20 \
  >"$T/killed.out" 2>&1 || rc=$?
[[ $rc -eq 137 ]] || fail "graft was not killed at return-trapped (exit $rc): $(cat "$T/killed.out")"
kill -0 "$pid" || fail "the target died with graft"
n=$(field calls)
wait_until 10 eval '(( $(field calls) > n + 20 ))' || fail "the crunchers stopped: $(stats)"
graft_ok recover --pid "$pid" --timeout 20
grep -q "rolled back the interrupted apply" "$T/graft.out" || fail "recover did not roll back: $(cat "$T/graft.out")"
assert_untouched "$pid"
expect c call 1
s=$(stats)
log "crunchers: $s"
[[ $s == *" bad 0" ]] || fail "wrong results: $s"

log "ok"
