#!/usr/bin/env bash
# A hostile target: it maps its own "graft:" region with a crafted record
# (programs/hostile.c) that would make graft write where it must not: a
# function that is a data word, a site outside the function or before it (by
# wrap-around), a replacement outside the patch, a saved jump that is no
# jump, a record of another region, a region size past its mapping (a revert
# would munmap the target's own memory), a region mapped shared (its pages
# could change under graft; graft maps its own private). graft must see
# through each:
# `list` reports an invalid record, `apply` and `revert` refuse to touch the
# process, and nothing changes: not the guarded global, not compute's bytes,
# not the fake region. A record that passes every check ("plausible")
# claims a patch whose jump is not in place: stacking on it is refused, and
# reverting it writes nothing outside that region.
source "$(dirname "$0")/common.sh"

cc "$PROGRAMS/hostile.c" -o "$T/hostile"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int fixed(int x) { return x * 100; }
GRAFT_REPLACE(compute, fixed);
C
build_patch "$T/fix.c" "$T/hostile" "$T/fix.graft"

for kind in site_in_data site_outside site_wraps replacement_outside redirect_not_jump wrong_name \
            region_too_big shared_region; do
  log "--- fake record: $kind"
  start_target $kind "$T/hostile"
  pid=${TPID[$kind]}
  id=$(ask $kind "fake $kind")
  [[ $id == 0123456789ab ]] || fail "$kind: the target could not make its fake region ($id)"
  bytes=$(ask $kind "bytes compute")
  fake=$(ask $kind fakebytes)
  regions=$(graft_regions "$pid")

  graft list --pid "$pid" && fail "$kind: graft list accepted the fake record"
  grep -q "invalid record" "$T/graft.out" || fail "$kind: graft list does not report the invalid record"
  graft_fails 1 apply "$T/fix.graft" --pid "$pid"
  [[ $GRAFT_ERROR == *"invalid record"*"refusing to change this process"* ]] ||
    fail "$kind: unexpected error: $GRAFT_ERROR"
  graft_fails 1 revert "$id" --pid "$pid"
  [[ $GRAFT_ERROR == *"invalid record"* ]] || fail "$kind: unexpected error: $GRAFT_ERROR"

  [[ $(ask $kind victim) == 1234 ]] || fail "$kind: graft wrote the target's global"
  [[ $(ask $kind "bytes compute") == "$bytes" ]] || fail "$kind: the bytes of compute changed"
  [[ $(ask $kind fakebytes) == "$fake" ]] || fail "$kind: graft wrote the fake region's code"
  [[ $(graft_regions "$pid") == "$regions" ]] || fail "$kind: the mappings of the fake region changed"
  [[ $(ask $kind call) == 7 ]] || fail "$kind: compute does not behave as before"
  assert_no_wx "$pid"
  stop_target $kind
done

log "--- a plausible fake record"
start_target p "$T/hostile"
pid=${TPID[p]}
[[ $(ask p "fake plausible") == 0123456789ab ]] || fail "plausible: no fake region"
bytes=$(ask p "bytes compute")
graft_ok list --pid "$pid"
grep -q "evil (id 0123456789ab)" "$T/graft.out" || fail "plausible: graft list does not show it"
# Stacking on it needs its jump at compute's entry: it is not there.
graft_fails 1 apply "$T/fix.graft" --pid "$pid"
[[ $GRAFT_ERROR == *"no longer holds the redirection of patch evil"* ]] ||
  fail "plausible: unexpected error: $GRAFT_ERROR"
[[ $(ask p "bytes compute") == "$bytes" ]] || fail "plausible: the bytes of compute changed"
# Reverting it: its jump is not in place, so nothing is written at compute;
# graft removes only the region the record describes.
before=$(grep -v 'graft:' "/proc/$pid/maps")
graft_ok revert 0123456789ab --pid "$pid"
[[ -z $(graft_regions "$pid") ]] || fail "plausible: the fake region is still mapped"
[[ $(grep -v 'graft:' "/proc/$pid/maps") == "$before" ]] || fail "plausible: other mappings changed"
[[ $(ask p "bytes compute") == "$bytes" ]] || fail "plausible: the bytes of compute changed"
[[ $(ask p victim) == 1234 && $(ask p call) == 7 ]] || fail "plausible: the target changed"
# And a real patch now applies.
apply_ok "$T/fix.graft" "$pid"
[[ $(ask p call) == 300 ]] || fail "the real patch does not work"
