#!/usr/bin/env bash
# GCC's -fipa-ra (on at -O2) lets caller() keep values in call-clobbered
# registers across its call to small(). A replacement of small() that calls
# libc would break it: `graft build' refuses it, naming the caller and the
# option. Built with -fno-ipa-ra, the same target takes the same patch, and
# the program computes the right value with it.
source "$(dirname "$0")/common.sh"

cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
#include <stdio.h>
extern volatile int k;
static int new_small(int x) {
  char buf[32];
  snprintf(buf, sizeof buf, "%d", x);  /* clobbers call-clobbered registers */
  return x * k + 2 + (buf[0] == '#');
}
GRAFT_REPLACE(small, new_small);
C

cc "$PROGRAMS/ipara.c" -o "$T/ipara"
graft_fails any build --from-source "$T/fix.c" --target "$T/ipara" -o "$T/fix.graft"
[[ $GRAFT_ERROR == *caller* && $GRAFT_ERROR == *small* && $GRAFT_ERROR == *-fipa-ra* ]] ||
  fail "the refusal does not name caller, small and -fipa-ra: $GRAFT_ERROR"
[[ ! -e $T/fix.graft ]] || fail "a patch file was written anyway"

cc -fno-ipa-ra "$PROGRAMS/ipara.c" -o "$T/ipara-noipara"
build_patch "$T/fix.c" "$T/ipara-noipara" "$T/fix.graft"
start_target p "$T/ipara-noipara"
expect p call 41
apply_ok "$T/fix.graft" "${TPID[p]}"
expect p call 42
graft_ok revert fix --pid "${TPID[p]}"
expect p call 41
assert_untouched "${TPID[p]}"
