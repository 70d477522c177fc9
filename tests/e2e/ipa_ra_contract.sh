#!/usr/bin/env bash
# GCC's -fipa-ra (on at -O2) lets caller() keep values in call-clobbered
# registers across its call to small(). A replacement of small() that calls
# libc would break it. With the target's DWARF, `graft build' puts an entry
# thunk in front of it that keeps those registers (tests/e2e/ipa_ra_thunk.sh
# runs it); without DWARF it cannot tell where small()'s arguments are and
# refuses the patch, naming the caller, the option and why. Built with
# -fno-ipa-ra, the same target takes the same patch with no thunk, and the
# program computes the right value with it.
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

cc -g0 "$PROGRAMS/ipara.c" -o "$T/ipara-nodwarf"
graft_fails any build --from-source "$T/fix.c" --target "$T/ipara-nodwarf" -o "$T/fix.graft"
[[ $GRAFT_ERROR == *caller* && $GRAFT_ERROR == *small* && $GRAFT_ERROR == *-fipa-ra* &&
   $GRAFT_ERROR == *"cannot keep them with an entry thunk: no DWARF"* ]] ||
  fail "the refusal does not name caller, small, -fipa-ra and why no thunk: $GRAFT_ERROR"
[[ ! -e $T/fix.graft ]] || fail "a patch file was written anyway"

cc "$PROGRAMS/ipara.c" -o "$T/ipara"
graft_ok build --from-source "$T/fix.c" --target "$T/ipara" -o "$T/fix.graft"
grep -q "\`small' gets an entry thunk that keeps rdx, rsi, rdi" "$T/graft.out" ||
  fail "the build with DWARF does not say it keeps caller's registers with a thunk"
rm "$T/fix.graft"

cc -fno-ipa-ra "$PROGRAMS/ipara.c" -o "$T/ipara-noipara"
build_patch "$T/fix.c" "$T/ipara-noipara" "$T/fix.graft"
! grep -q "entry thunk" "$T/graft.out" || fail "a thunk was made for a target built with -fno-ipa-ra"
start_target p "$T/ipara-noipara"
expect p call 41
apply_ok "$T/fix.graft" "${TPID[p]}"
expect p call 42
graft_ok revert fix --pid "${TPID[p]}"
expect p call 41
assert_untouched "${TPID[p]}"
