#!/usr/bin/env bash
# ctest-labels: regression
#
# REGRESSION TEST: a core bug this suite found, fixed in df0fed3 ("Fix core
# bugs found by the e2e suite"). Before the fix: a patch file whose manifest
# has one digit changed in a number graft uses to build the code (an external
# symbol's value, a relocation's target, a replacement's offset) is still a
# valid manifest, and graft applies it: the target then writes to the wrong
# address or jumps into the middle of a function (it crashes). The format had
# no checksum over the manifest and image, so graft could not tell. Now the
# file carries a SHA-256, and the change is refused. Expected: a
# one-line error, a non-zero exit, the process untouched.
source "$(dirname "$0")/common.sh"

build_basic_with_compute_fix

accepted=()
for how in external-value relocation replacement; do
  start_target $how "$T/basic"
  pid=${TPID[$how]}
  what=$("$PYTHON" "$PROGRAMS/corrupt.py" "$T/fix.graft" "$T/bad-$how.graft" "$how")
  log "--- $how: $what"
  rc=0
  graft apply "$T/bad-$how.graft" --pid "$pid" || rc=$?
  if [[ $rc -eq 0 ]]; then
    sleep 0.3
    if kill -0 "$pid" 2>/dev/null; then
      state="the target still runs, with $(graft_regions "$pid" | wc -l) graft mapping(s)"
      stop_target $how
    else
      status=0
      wait "$pid" 2>/dev/null || status=$?
      unset "TPID[$how]"
      state="the target died (wait status $status$( ((status > 128)) && echo ", signal $((status - 128))"))"
    fi
    accepted+=("$how ($what): applied; $state")
  else
    assert_untouched "$pid"
    [[ $(ask $how call) == "7 0" ]] || fail "$how: compute does not behave as before"
    stop_target $how
  fi
done
if [[ ${#accepted[@]} -gt 0 ]]; then
  printf 'REGRESSION (df0fed3): graft applied a patch file with a corrupt manifest:\n' >&2
  printf '  %s\n' "${accepted[@]}" >&2
  fail "corrupt manifests were applied (${#accepted[@]} of 3)"
fi
