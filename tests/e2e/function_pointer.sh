#!/usr/bin/env bash
# A static function that is only ever called through a function pointer: the
# calls through the pointer reach the replacement, and the other entry of the
# same table is left alone.
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/fnptr.c" -o "$T/fnptr"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_scale(int x) { return x * 30; }
GRAFT_REPLACE(scale, new_scale);
C
build_patch "$T/fix.c" "$T/fnptr" "$T/fix.graft"

start_target f "$T/fnptr"
expect f call "27 -3"
apply_ok "$T/fix.graft" "${TPID[f]}"
expect f call "90 -3"
graft_ok revert fix --pid "${TPID[f]}"
expect f call "27 -3"
assert_untouched "${TPID[f]}"
