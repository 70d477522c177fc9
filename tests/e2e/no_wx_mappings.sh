#!/usr/bin/env bash
# graft never leaves a mapping that is both writable and executable: a patch
# with code, read-only data, initialised data and zeroed data, applied to a
# PIE and a non-PIE process: the patch's code is r-x, its data rw-, the rest
# r--; no mapping of the process is ever w+x (the other tests check this
# after every apply too). The patch's data works (it keeps state). (No libc
# call in the replacement: the callers of compute() rely on -fipa-ra.)
source "$(dirname "$0")/common.sh"

cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static const char table[] = "0123456789abcdef";  /* rodata */
static int calls = 40;                            /* data */
static char last[32];                             /* bss */
static int new_compute(int x) {
  calls++;
  last[calls & 15] = table[x & 15];
  return calls * 10 + (last[3] == '3');
}
GRAFT_REPLACE(compute, new_compute);
C

for kind in pie nopie; do
  flags=(-pie -fPIE)
  [[ $kind == nopie ]] && flags=(-no-pie -fno-PIE)
  cc "${flags[@]}" -pthread "$PROGRAMS/basic.c" -o "$T/basic-$kind"
  build_patch "$T/fix.c" "$T/basic-$kind" "$T/fix-$kind.graft"
  start_target $kind "$T/basic-$kind"
  pid=${TPID[$kind]}
  assert_no_wx "$pid"
  # The stop model: no transition area (whose page is rw- too); rw-: the
  # patch's data, and the unwind information of its return trap (libgcc's
  # object and the .eh_frame: docs/architecture.md).
  apply_ok "$T/fix-$kind.graft" "$pid" --model stop
  regions=$(graft_regions "$pid")
  log "$kind: graft mappings:"
  sed 's/^/    /' <<<"$regions"
  perms=$(awk '{ print substr($2, 1, 3) }' <<<"$regions" | sort | uniq -c | awk '{ print $2 "x" $1 }' | paste -sd' ')
  [[ $(grep -c 'r-x' <<<"$regions") -eq 1 ]] || fail "$kind: expected one r-x graft mapping: $perms"
  [[ $(grep -c 'rw-' <<<"$regions") -eq 2 ]] || fail "$kind: expected two rw- graft mappings: $perms"
  [[ $(awk 'substr($2, 1, 3) !~ /^(r-x|rw-|r--)$/' <<<"$regions") == "" ]] ||
    fail "$kind: unexpected permissions among the graft mappings: $perms"
  # The patch keeps its state in its own data: calls is 40, then 41, 42...
  # (the worker thread calls too, so only check that it grows).
  a=$(ask $kind call) && b=$(ask $kind call)
  log "$kind: call -> $a, then $b"
  [[ ${a%% *} -ge 410 && ${b%% *} -gt ${a%% *} ]] || fail "$kind: the patch's data does not work: $a, $b"
  graft_ok revert fix-$kind --pid "$pid"
  assert_untouched "$pid"
  stop_target $kind
done
