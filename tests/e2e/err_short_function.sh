#!/usr/bin/env bash
# A function too short for the 5-byte jump (tiny: 3 bytes of assembly) is
# refused with its name and size; the process is untouched.
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
size=$((16#$(nm -S "$T/basic" | awk '$4 == "tiny" { print $2 }')))
[[ $size -eq 3 ]] || fail "tiny should be 3 bytes, is $size"

cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_tiny(void) { return 42; }
GRAFT_REPLACE(tiny, new_tiny);
C
start_target b "$T/basic"
pid=${TPID[b]}
expect b tiny 0
if graft build --from-source "$T/fix.c" --target "$T/basic" -o "$T/fix.graft"; then
  # Refusing at build time is expected; if the build lets it through, apply
  # must refuse.
  graft_fails 1 apply "$T/fix.graft" --pid "$pid"
else
  rc=$?
  [[ $rc -lt 128 ]] || fail "graft build crashed"
  GRAFT_ERROR=$(cat "$T/graft.out" "$T/graft.err")
  [[ $(grep -c . <<<"$GRAFT_ERROR") -eq 1 ]] || fail "not a one-line error: $GRAFT_ERROR"
  [[ ! -e $T/fix.graft ]] || fail "a patch file was written anyway"
fi
[[ $GRAFT_ERROR == *tiny* && $GRAFT_ERROR == *"3 bytes"* ]] ||
  fail "the error does not name tiny and its size: $GRAFT_ERROR"
[[ $GRAFT_ERROR == *short* ]] || fail "the error does not say too short: $GRAFT_ERROR"
assert_untouched "$pid"
expect b tiny 0
