#!/usr/bin/env bash
# A PIE and a non-PIE (-no-pie) executable: the same patch source is built
# against each, applied live, and reverted. The patch calls a static function
# of the target and updates one of its globals.
source "$(dirname "$0")/common.sh"

cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern int counter;
int helper(int x);  /* static in the target */
static int new_compute(int x) { counter++; return helper(x) * 100; }
GRAFT_REPLACE(compute, new_compute);
C

for kind in pie nopie; do
  flags=(-pie -fPIE)
  [[ $kind == nopie ]] && flags=(-no-pie -fno-PIE)
  cc "${flags[@]}" -pthread "$PROGRAMS/basic.c" -o "$T/basic-$kind"
  type=$(LC_ALL=C readelf -h "$T/basic-$kind" | awk '/Type:/ { print $2 }')
  want_type=DYN
  [[ $kind == nopie ]] && want_type=EXEC
  [[ $type == "$want_type" ]] || fail "basic-$kind is ELF type $type, expected $want_type"

  build_patch "$T/fix.c" "$T/basic-$kind" "$T/fix-$kind.graft"
  graft_ok info "$T/fix-$kind.graft"
  if [[ $kind == pie ]]; then
    grep -q 'PIE or shared library' "$T/graft.out" || fail "info does not say PIE"
  else
    grep -q 'non-PIE executable' "$T/graft.out" || fail "info does not say non-PIE"
  fi

  start_target $kind "$T/basic-$kind"
  pid=${TPID[$kind]}
  expect $kind call "7 0"
  apply_ok "$T/fix-$kind.graft" "$pid"
  grep -q "^pid $pid: applied fix-$kind " "$T/graft.out" || fail "unexpected apply output"
  [[ -n $(graft_regions "$pid") ]] || fail "no graft region after apply"
  # The patch counts its calls (the worker thread's too) in `counter'.
  r1=$(ask $kind call)
  sleep 0.05
  r2=$(ask $kind call)
  log "$kind: call -> $r1, then $r2"
  [[ $r1 == "600 "* && $r2 == "600 "* ]] || fail "$kind: not the patched compute: $r1, $r2"
  [[ ${r2#600 } -gt ${r1#600 } ]] || fail "$kind: the patch does not update counter: $r1, $r2"
  # The worker (at nice 19: slow on a busy machine) still runs.
  loops=$(ask $kind loops)
  worker_runs() { [[ $(ask $kind loops) -gt $loops ]]; }
  wait_until 20 worker_runs || fail "the worker thread stopped running"

  graft_ok revert "fix-$kind" --pid "$pid"
  r1=$(ask $kind call)
  sleep 0.05
  r2=$(ask $kind call)
  log "$kind: call -> $r1, then $r2"
  [[ $r1 == "7 "* && $r1 == "$r2" ]] || fail "$kind: not the original compute: $r1, $r2"
  assert_untouched "$pid"
  stop_target $kind
done
