#!/usr/bin/env bash
# A patch built for another binary (same program, other build: another
# build-id) is refused, naming the build-id; the process is untouched.
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cc -pthread -DOTHER_BUILD=1 -O1 "$PROGRAMS/basic.c" -o "$T/basic-other"
id1=$(LC_ALL=C readelf -n "$T/basic" | awk '/Build ID/ { print $3 }')
id2=$(LC_ALL=C readelf -n "$T/basic-other" | awk '/Build ID/ { print $3 }')
[[ -n $id1 && $id1 != "$id2" ]] || fail "the two builds should have different build-ids"

cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_compute(int x) { return x * 100; }
GRAFT_REPLACE(compute, new_compute);
C
build_patch "$T/fix.c" "$T/basic-other" "$T/fix-other.graft"

start_target b "$T/basic"
pid=${TPID[b]}
graft_fails 1 apply "$T/fix-other.graft" --pid "$pid"
[[ $GRAFT_ERROR == *build-id* && $GRAFT_ERROR == *${id2:0:16}* ]] ||
  fail "the error does not name the patch's build-id ${id2:0:16}: $GRAFT_ERROR"
[[ $GRAFT_ERROR == *"pid $pid"* ]] || fail "the error does not name the process: $GRAFT_ERROR"
assert_untouched "$pid"
expect b call "7 0"

# --all with that patch finds no process (ours maps the other build).
graft_fails 1 apply "$T/fix-other.graft" --all
assert_untouched "$pid"

# A copy of the right binary under another name is the same build: accepted.
cp "$T/basic" "$T/basic-copy"
build_patch "$T/fix.c" "$T/basic-copy" "$T/fix-copy.graft"
apply_ok "$T/fix-copy.graft" "$pid"
expect b call "300 0"
