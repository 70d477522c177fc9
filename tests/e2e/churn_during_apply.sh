#!/usr/bin/env bash
# A target that creates and ends threads without pause, takes a signal
# every 100 us in its workers (whose handler calls the patched function),
# and forks and execs every 5 ms, patched and reverted five times over: no
# wrong result, no lost signal handler, no child that fails, and every
# process ends up unpatched. Then a target with 1,000 threads (parked in a
# blocking read) is patched and reverted.
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/churn.c" -o "$T/churn"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_compute(int x) { return x * 200; }
GRAFT_REPLACE(compute, new_compute);
C
build_patch "$T/fix.c" "$T/churn" "$T/fix.graft"

start_target c "$T/churn"
pid=${TPID[c]}
sleep 0.5
for round in 1 2 3 4 5; do
  s0=$(ask c spawned) f0=$(ask c forks) g0=$(ask c signals)
  apply_ok "$T/fix.graft" "$pid" --timeout 30
  graft_ok revert fix --pid "$pid" --timeout 30
  assert_untouched "$pid"
  sleep 0.2
  s1=$(ask c spawned) f1=$(ask c forks) g1=$(ask c signals)
  log "round $round: +$((s1 - s0)) threads, +$((f1 - f0)) forks, +$((g1 - g0)) signals meanwhile"
  [[ $s1 -gt $s0 && $f1 -gt $f0 && $g1 -gt $g0 ]] || fail "the target stopped churning"
done
[[ $(ask c bad) -eq 0 ]] || fail "$(ask c bad) wrong results or failed children"
stop_target c

start_target m "$T/churn" many 1000
pid=${TPID[m]}
wait_until 30 bash -c "[[ \$(ls /proc/$pid/task | wc -l) -ge 1005 ]]" || fail "the 1,000 threads did not start"
apply_ok "$T/fix.graft" "$pid" --timeout 60 --json
log "1,005 threads: $(json_get 'j["results"][0]' <"$T/graft.out")"
[[ $(json_get 'j["results"][0]["threads"]' <"$T/graft.out") -ge 1005 ]] || fail "graft did not see every thread"
graft_ok revert fix --pid "$pid" --timeout 60
assert_untouched "$pid"
[[ $(ask m bad) -eq 0 ]] || fail "wrong results in the 1,000-thread target"
