#!/usr/bin/env bash
# A thread that never leaves the function (it spins inside, no call, no
# system call): apply gives up at the timeout, names the thread and the
# function, exits 1, and leaves the process untouched. Revert too: while a
# thread spins inside the replacement, revert gives up and the patch stays.
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern volatile int spin_stop, spinning;  /* statics of the target */
static int new_spin_here(int x) {         /* spins too, answers 2 */
  spinning = 1;
  while (!spin_stop) x += 2;
  spinning = 0;
  return 2;
}
GRAFT_REPLACE(spin_here, new_spin_here);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"

start_target b "$T/basic"
pid=${TPID[b]}
bytes=$(ask b "bytes spin_here")
tid=$(ask b spin)
[[ $tid -gt 0 ]] || fail "the spinner did not start"
log "thread $tid spins inside spin_here (state $(thread_state "$pid" "$tid"))"

start=$(date +%s%N)
graft_fails 1 apply "$T/fix.graft" --pid "$pid" --timeout 2 --json
ms=$((($(date +%s%N) - start) / 1000000))
log "graft gave up after $ms ms"
((ms >= 1900)) || fail "graft gave up after $ms ms, before its 2 s timeout"
((ms < 15000)) || fail "graft took $ms ms with --timeout 2"
[[ $GRAFT_ERROR == *"thread $tid"* && $GRAFT_ERROR == *spin_here* ]] ||
  fail "the error does not name thread $tid and spin_here: $GRAFT_ERROR"
[[ $(json_get 'j["results"][0]["ok"]' <"$T/graft.out") == false ]] || fail "ok should be false"
assert_untouched "$pid"
[[ $(ask b "bytes spin_here") == "$bytes" ]] || fail "the bytes of spin_here changed"
expect b unspin 1
expect b call "7 0"

# Now with the patch applied: the thread spins in the replacement.
apply_ok "$T/fix.graft" "$pid"
tid=$(ask b spin)
[[ $tid -gt 0 ]] || fail "the spinner did not start"
graft_fails 1 revert fix --pid "$pid" --timeout 1
[[ $GRAFT_ERROR == *"thread $tid"* && $GRAFT_ERROR == *"patch fix"* ]] ||
  fail "the error does not name thread $tid and the patch: $GRAFT_ERROR"
[[ $(patch_count "$pid") -eq 1 ]] || fail "the patch should still be listed"
[[ -n $(graft_regions "$pid") ]] || fail "the patch's mapping is gone while a thread runs in it"
assert_no_wx "$pid"
expect b unspin 2
graft_ok revert fix --pid "$pid"
assert_untouched "$pid"
[[ $(ask b "bytes spin_here") == "$bytes" ]] || fail "revert did not restore spin_here"
