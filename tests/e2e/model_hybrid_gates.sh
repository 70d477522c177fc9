#!/usr/bin/env bash
# Busy callers of a tiny function under the hybrid model: 24 workers on two
# cores call leaf(a, b, c, d) back to back, so a stopped worker is nearly
# always inside leaf()'s gate or at the first instruction of the code the
# gate sends it to, never "outside" for a stack check. graft takes such a
# worker back to the function's entry (the registers the gate saved put
# back: rcx and rdx are leaf()'s 4th and 3rd arguments) and moves it. The
# transition must complete, count the threads it took back, and no call may
# return garbage (each result is checked against its arguments); every call
# that starts after the apply is new.
source "$(dirname "$0")/common.sh"

cc -O2 -pthread -fno-ipa-ra "$PROGRAMS/gatebusy.c" -o "$T/gatebusy"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_leaf(int a, int b, int c, int d) { return a + 3 * b + 5 * c + 7 * d + 2; }
GRAFT_REPLACE(leaf, new_leaf);
C
build_patch "$T/fix.c" "$T/gatebusy" "$T/fix.graft"

# check_epoch NAME old|new: the calls started from now on (2000 per worker
# at least) give that result, and none returned garbage.
check_epoch() {
  local e s
  e=$(ask "$1" mark)
  s=$(ask "$1" "stats $e")
  log "$1: epoch $e: $s"
  [[ ${s##*min=} -ge 2000 ]] || fail "$1: a worker made fewer than 2000 calls (stuck or dead?): $s"
  [[ $s == *" bad=0 "* ]] || fail "$1: calls returned garbage: $s"
  if [[ $2 == new ]]; then
    [[ $s == "old=0 "* ]] || fail "$1: calls started after the apply returned the old result: $s"
  else
    [[ $s == *" new=0 "* ]] || fail "$1: calls returned the new result before the apply: $s"
  fi
}

rewound_total=0
for round in 1 2; do
  name=g$round
  start_target "$name" "$T/gatebusy" 24
  pid=${TPID[$name]}
  all_running() { [[ $(ask "$name" threads) -eq 24 ]]; }
  wait_until 30 all_running || fail "the 24 workers did not start"
  check_epoch "$name" old
  apply_ok "$T/fix.graft" "$pid" --model hybrid --timeout 60 --json
  r='j["results"][0]'
  [[ $(json_get "$r[\"ok\"]" <"$T/graft.out") == true ]] || fail "apply not ok"
  [[ $(json_get "$r[\"pause_ms\"]" <"$T/graft.out") == 0.0 ]] || fail "a per-thread apply reported a global pause"
  rewound=$(json_get "$r[\"rewound\"]" <"$T/graft.out")
  log "round $round: transition $(json_get "$r[\"transition_ms\"]" <"$T/graft.out") ms," \
    "$(json_get "$r[\"stalls\"]" <"$T/graft.out") single-thread stops, $rewound threads taken back out of the gate"
  rewound_total=$((rewound_total + rewound))
  check_epoch "$name" new
  stop_target "$name"
done
# Every worker stopped outside the gate in both rounds would be a freak
# outcome, but then the path this test is about did not run: not a pass.
[[ $rewound_total -gt 0 ]] || fail "no worker was ever taken back out of a gate"
log "ok: $rewound_total workers taken back out of the gate in 2 rounds"
