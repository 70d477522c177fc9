#!/usr/bin/env bash
# ctest-timeout: 240
# A thread that lives inside a replaced function: it sleeps 3 s inside
# dwell() and is outside it 50 ms between calls, spinning (programs/returns.c),
# among nine idle threads. graft points the return address of its dwell() frame at
# an exit stub: the thread moves the moment dwell() returns, and the
# transition ends right after, with --model lazy and hybrid alike (without
# the stubs lazy gives up after its timeout: the thread is never blocked in
# a system call outside dwell()). The revert of the patch goes back the
# same way, the sleeper then being inside the replacement.
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/returns.c" -o "$T/returns"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <time.h>
extern int entered;
static int new_dwell(int ms) {
  __atomic_fetch_add(&entered, 1, __ATOMIC_SEQ_CST);
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  return 2;
}
GRAFT_REPLACE(dwell, new_dwell);
C
build_patch "$T/fix.c" "$T/returns" "$T/fix.graft"

now_ns() { date +%s%N; }

# check_prompt WHAT N0: graft just ended; the sleeper returned since it had
# returned N0 times, through its stub, and the transition ended right after
# (graft's own measure; the lag seen from here includes graft's exit and
# this script, and is only checked against gross delays).
check_prompt() {
  local what=$1 n0=$2 end last r t n passed rewritten to_end lag
  end=$(now_ns)
  last=$(ask s last)
  read -r r t n <<<"$last"
  passed=$(json_get 'j["results"][0]["returns_passed"]' <"$T/graft.out")
  rewritten=$(json_get 'j["results"][0]["returns_rewritten"]' <"$T/graft.out")
  to_end=$(json_get 'j["results"][0]["return_to_end_ms"]' <"$T/graft.out")
  lag=$(((end - t) / 1000000))
  log "$what: rewritten=$rewritten passed=$passed; graft: last return -> end $to_end ms; sleeper's return -> graft exited: $lag ms"
  [[ $rewritten -ge 1 && $passed -ge 1 ]] || fail "$what: the sleeper did not move through an exit stub"
  # (Twice if graft, slow to start on a loaded machine, came after a return.)
  ((n > n0)) || fail "$what: the transition ended, but the sleeper never returned from dwell()"
  ((lag >= 0 && lag < 2000)) || fail "$what: graft ended $lag ms after the sleeper's return"
  # A revert then also stops every thread to check none is left in the
  # region before it unmaps it (the sleeper spins: it stops at its next turn
  # on a CPU).
  local bound=100
  [[ $what == *revert ]] && bound=1000
  "$PYTHON" -c "import sys; sys.exit(0 if $to_end < $bound else 1)" ||
    fail "$what: the transition ended $to_end ms after graft saw the return (bound $bound ms)"
}

for model in lazy hybrid; do
  start_target s "$T/returns"
  pid=${TPID[s]}
  tid=$(ask s sleeper)
  expect s "entered 1" 1
  sleep 0.3  # well inside dwell(), 2.7 s to go
  if [[ $model == lazy ]]; then
    # A transition that times out with the return rewritten puts the
    # return address back before it rolls back and removes the region.
    rc=0
    graft apply "$T/fix.graft" --pid "$pid" --model lazy --timeout 0.5 --json || rc=$?
    [[ $rc -eq 1 ]] || fail "lazy apply with --timeout 0.5 exited with $rc, expected 1 (rolled back)"
    restored=$(json_get 'j["results"][0]["returns_restored"]' <"$T/graft.out")
    [[ $restored -eq 1 ]] || fail "the rolled-back apply put back $restored return addresses, expected 1"
    assert_untouched "$pid"
    read -r _ _ n0 <<<"$(ask s last)"
    returned() { read -r _ _ n <<<"$(ask s last)"; [[ $n -gt $n0 ]]; }
    wait_until 10 returned || fail "the sleeper did not return from dwell() after the roll-back"
    read -r r _ _ <<<"$(ask s last)"
    [[ $r -eq 1 ]] || fail "the sleeper's dwell() returned $r after the roll-back, expected 1"
    n=$(ask s "entered 0")
    expect s "entered $((n + 1))" $((n + 1))
    sleep 0.3
  fi
  read -r _ _ n0 <<<"$(ask s last)"
  start=$(now_ns)
  apply_ok "$T/fix.graft" "$pid" --model "$model" --timeout 20 --json
  ms=$((($(now_ns) - start) / 1000000))
  log "$model: apply took $ms ms (sleeper $tid)"
  check_prompt "$model apply" "$n0"
  ((ms < 8000)) || fail "$model: apply took $ms ms (the sleeper returned within 3 s)"
  expect s call 2

  # The sleeper is in the replacement now: the revert waits for its return.
  entered=$(ask s "entered 0")
  expect s "entered $((entered + 1))" $((entered + 1))
  sleep 0.3
  read -r _ _ n0 <<<"$(ask s last)"
  start=$(now_ns)
  graft_ok revert fix --pid "$pid" --timeout 20 --json
  ms=$((($(now_ns) - start) / 1000000))
  log "$model: revert took $ms ms"
  check_prompt "$model revert" "$n0"
  ((ms < 8000)) || fail "$model: revert took $ms ms (the sleeper returned within 3 s)"
  assert_untouched "$pid"
  expect s call 1
  read -r r _ _ <<<"$(ask s last)"
  [[ $r -eq 2 ]] || fail "$model: the sleeper's last call returned $r (the replacement's 2 expected)"
  stop_target s
done
log "ok"
