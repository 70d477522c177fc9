#!/usr/bin/env bash
# A patch that refers to a function the target does not have: replacing a
# function the target lacks is refused by `graft build', naming it; calling
# one that exists nowhere in the process is refused by `graft apply', naming
# it, with the process untouched.
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"

cat >"$T/no_target.c" <<'C'
#include <graft/patch.h>
static int new_f(int x) { return x; }
GRAFT_REPLACE(no_such_function, new_f);
C
graft_fails any build --from-source "$T/no_target.c" --target "$T/basic" -o "$T/no_target.graft"
[[ $GRAFT_ERROR == *no_such_function* ]] || fail "the error does not name no_such_function: $GRAFT_ERROR"
[[ ! -e $T/no_target.graft ]] || fail "a patch file was written anyway"

cat >"$T/no_callee.c" <<'C'
#include <graft/patch.h>
int graft_e2e_missing_helper(int x);  /* defined nowhere */
static int new_compute(int x) { return graft_e2e_missing_helper(x); }
GRAFT_REPLACE(compute, new_compute);
C
# `graft build' cannot know what the process will have loaded: it may accept
# the patch (with a note), and then `graft apply' must refuse it.
if graft build --from-source "$T/no_callee.c" --target "$T/basic" -o "$T/no_callee.graft"; then
  grep -q graft_e2e_missing_helper "$T/graft.out" "$T/graft.err" ||
    fail "graft build does not mention graft_e2e_missing_helper"
  start_target b "$T/basic"
  pid=${TPID[b]}
  graft_fails 1 apply "$T/no_callee.graft" --pid "$pid"
  [[ $GRAFT_ERROR == *graft_e2e_missing_helper* ]] ||
    fail "the error does not name graft_e2e_missing_helper: $GRAFT_ERROR"
  assert_untouched "$pid"
  expect b call "7 0"
else
  [[ $(cat "$T/graft.out" "$T/graft.err") == *graft_e2e_missing_helper* ]] ||
    fail "the build error does not name graft_e2e_missing_helper"
fi
