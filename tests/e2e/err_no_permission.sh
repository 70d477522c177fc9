#!/usr/bin/env bash
# No permission to trace: graft run as `nobody' against a root process fails
# with a one-line error, and the process is untouched.
source "$(dirname "$0")/common.sh"

[[ $(id -u) -eq 0 ]] || fail "this test runs as root (it needs a root target and setpriv)"
command -v setpriv >/dev/null || fail "setpriv (util-linux) is not installed"
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
# A copy nobody can reach whatever the permissions of the build directory.
cp "$GRAFT" "$T/graft"
chmod 755 "$T/graft"
"${as_nobody[@]}" test -x "$T/graft" || fail "nobody cannot run $T/graft"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_compute(int x) { return x * 100; }
GRAFT_REPLACE(compute, new_compute);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"
chmod 644 "$T/fix.graft"

start_target b "$T/basic"
pid=${TPID[b]}

GRAFT_REAL=$GRAFT
GRAFT_AS_NOBODY=$T/graft-as-nobody
printf '#!/bin/sh\nexec %s %q "$@"\n' "${as_nobody[*]}" "$T/graft" >"$GRAFT_AS_NOBODY"
chmod 755 "$GRAFT_AS_NOBODY"

GRAFT=$GRAFT_AS_NOBODY
graft_fails any apply "$T/fix.graft" --pid "$pid"
[[ $GRAFT_ERROR == *"$pid"* ]] || fail "the error does not name pid $pid: $GRAFT_ERROR"
[[ ${GRAFT_ERROR,,} == *permi* ]] || fail "the error does not say permission: $GRAFT_ERROR"
graft_fails any revert fix --pid "$pid"
GRAFT=$GRAFT_REAL

assert_untouched "$pid"
expect b call "7 0"
# As root, the same patch applies.
apply_ok "$T/fix.graft" "$pid"
expect b call "300 0"
# And nobody cannot revert it.
GRAFT=$GRAFT_AS_NOBODY
graft_fails any revert fix --pid "$pid"
GRAFT=$GRAFT_REAL
expect b call "300 0"
[[ $(patch_count "$pid") -eq 1 ]] || fail "the patch should still be applied"
