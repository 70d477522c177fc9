#!/usr/bin/env bash
# C++ exceptions thrown through a replacement function: the patch's unwind
# information is registered with the process's unwinder (libgcc), so a
# throw inside the new parse() reaches the catch two frames up, in the
# main thread and in four workers throwing all the while. Under stop and
# hybrid, over apply/revert cycles; then graft killed just before and just
# after the registration, and `graft recover' deregistering it: the process
# keeps throwing and catching, its maps and fds unchanged.
source "$(dirname "$0")/common.sh"

cxx -pthread "$PROGRAMS/throwing.cc" -o "$T/throwing"
cat >"$T/fix.cc" <<'CXX'
#include <graft/patch.h>
#include <stdexcept>
long new_parse(long n) {
  if (n < 0) throw std::invalid_argument("negative (patched)");
  if (n > 900) throw std::out_of_range("too large");
  return n * 3;
}
GRAFT_REPLACE("parse(long)", new_parse);
CXX
build_patch "$T/fix.cc" "$T/throwing" "$T/fix.graft"

start_target t "$T/throwing"
pid=${TPID[t]}
expect t "call -1" "error negative"
expect t "call 5" "value 10"
ask t "load 4" >/dev/null
maps0=$(grep -vc 'graft:' "/proc/$pid/maps")
fds0=$(ls "/proc/$pid/fd" | wc -l)
bad_is_zero() {
  local s
  s=$(ask t stats)
  [[ $s == *" bad 0" ]] || fail "wrong results in the workers: $s"
}

for model in stop hybrid; do
  for cycle in 1 2 3; do
    apply_ok "$T/fix.graft" "$pid" --model "$model" --timeout 30
    expect t "call -1" "error negative (patched)"
    expect t "call 950" "error too large"
    expect t "call 5" "value 15"
    graft_ok revert fix --pid "$pid" --timeout 30
    expect t "call -1" "error negative"
    expect t "call 950" "value 1900"
    bad_is_zero
  done
done
assert_untouched "$pid"

# Killed before and after the registration: the next graft (recover) takes
# a registration out of libgcc before it unmaps the region.
for point in image-written unwind-registered stub-unwind-registered; do
  rc=0
  GRAFT_FAULT=$point "$GRAFT" apply "$T/fix.graft" --pid "$pid" --timeout 30 >"$T/graft.out" 2>&1 || rc=$?
  [[ $rc -eq 137 ]] || fail "graft was not killed at $point (exit $rc): $(cat "$T/graft.out")"
  expect t "call -1" "error negative"
  graft_ok recover --pid "$pid"
  grep -q "rolled back" "$T/graft.out" || fail "$point: recover did not roll back: $(cat "$T/graft.out")"
  assert_untouched "$pid"
  expect t "call -1" "error negative"
done
# libgcc no longer knows the unmapped region: throwing still works (a stale
# registration would make it read unmapped memory while searching).
expect t "call -1" "error negative"
apply_ok "$T/fix.graft" "$pid" --model hybrid --timeout 30
expect t "call 950" "error too large"
graft_ok revert fix --pid "$pid"
bad_is_zero
log "workers: $(ask t stats)"
[[ $(grep -vc 'graft:' "/proc/$pid/maps") -eq $maps0 ]] || fail "the target's mappings changed"
[[ $(ls "/proc/$pid/fd" | wc -l) -eq $fds0 ]] || fail "the target's fds changed"
assert_untouched "$pid"
log "ok"
