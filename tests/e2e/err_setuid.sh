#!/usr/bin/env bash
# graft never widens access: installed setuid root (or setgid), it would let
# any user patch processes they cannot trace. Such a graft refuses to run at
# all, for any command, with a one-line error; the root process it was
# pointed at is untouched. (The test's directory is on a filesystem without
# nosuid, or the kernel would ignore the bit and the test could not tell.)
source "$(dirname "$0")/common.sh"

[[ $(id -u) -eq 0 ]] || fail "this test runs as root (setuid root copy, setpriv)"
command -v setpriv >/dev/null || fail "setpriv (util-linux) is not installed"
findmnt -n -o OPTIONS --target "$T" | grep -qw nosuid &&
  fail "$T is on a nosuid filesystem: set TMPDIR to one without nosuid"
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

build_basic_with_compute_fix
chmod 644 "$T/fix.graft"
start_target b "$T/basic"
pid=${TPID[b]}

for mode in 4755 2755; do
  cp "$GRAFT" "$T/graft-$mode"
  chmod "$mode" "$T/graft-$mode"
  for args in "apply $T/fix.graft --pid $pid" "list --pid $pid" "info $T/fix.graft"; do
    rc=0
    # shellcheck disable=SC2086
    "${as_nobody[@]}" "$T/graft-$mode" $args >"$T/out" 2>&1 || rc=$?
    log "mode $mode, graft $args: exit $rc: $(cat "$T/out")"
    [[ $rc -eq 2 ]] || fail "a mode $mode graft ran as nobody (exit $rc)"
    [[ $(grep -c . "$T/out") -eq 1 ]] || fail "not a one-line error"
    grep -q "must not be installed setuid, setgid" "$T/out" || fail "unexpected error: $(cat "$T/out")"
  done
done
assert_untouched "$pid"
[[ $(ask b call) == "7 0" ]] || fail "compute does not behave as before"
