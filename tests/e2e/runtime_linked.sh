#!/usr/bin/env bash
# A program that links libgraft-rt.so (or LD_PRELOADs it) keeps its own
# runtime: a patch's graft_shadow_* calls bind to the library's functions,
# graft injects nothing, and the patch sees the shadow variable the program
# itself attached at startup (id 99 on account 0, holding 4242).
source "$(dirname "$0")/common.sh"

RT_DIR=$(dirname "$GRAFT")
[[ -f $RT_DIR/libgraft-rt.so ]] || fail "no libgraft-rt.so next to $GRAFT"

cc -pthread -fno-ipa-ra -DWITH_RUNTIME -I"$GRAFT_INCLUDE_DIR" "$PROGRAMS/ledger.c" -o "$T/ledger_rt" \
  -L"$RT_DIR" -Wl,-rpath,"$RT_DIR" -lgraft-rt
cc -pthread -fno-ipa-ra "$PROGRAMS/ledger.c" -o "$T/ledger"
for target in ledger_rt ledger; do
  cat >"$T/mine_$target.c" <<'C'
#include <graft/patch.h>
#include <graft/runtime.h>
struct account { long balance; int id; };
extern struct account accounts[64];
static int version_reads_program_shadow(void) {
  long *mine = graft_shadow_get(&accounts[0], 99);
  long *ours = graft_shadow_get_or_alloc(&accounts[1], 100, sizeof(long), 0, 0);
  ++*ours;
  return mine ? (int)*mine : -1;
}
GRAFT_REPLACE(version, version_reads_program_shadow);
C
  build_patch "$T/mine_$target.c" "$T/$target" "$T/mine_$target.graft"
done

check() {
  local label=$1 target=$2 pid
  shift 2
  start_target $label "$@"
  pid=${TPID[$label]}
  grep -q libgraft-rt.so "/proc/$pid/maps" || fail "$label: libgraft-rt.so is not mapped"
  apply_ok "$T/mine_$target.graft" "$pid"
  grep -q injected "$T/graft.out" && fail "$label: graft injected a runtime although the program has one"
  [[ -z $(graft_regions "$pid" | grep 'graft:rt') ]] || fail "$label: a graft:rt region appeared"
  expect $label version "$want"
  graft_ok revert "mine_$target" --pid "$pid"
  assert_untouched "$pid"
  stop_target $label
}

want=4242 check linked ledger_rt "$T/ledger_rt"
# Preloaded into a program that does not link it: the program attached no
# shadow (-1), but the patch binds to the preloaded library all the same.
want=-1 check preloaded ledger env LD_PRELOAD="$RT_DIR/libgraft-rt.so" "$T/ledger"
