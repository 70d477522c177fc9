#!/usr/bin/env bash
# A thread that shares another's TLS (a raw clone() without CLONE_SETTLS):
# the gates find threads by their thread pointer, so two threads with one
# cannot be told apart. hybrid and lazy read a thread's pointer when they
# first stop it (after the gates are live): the transition must reverse,
# say why, and leave the process exactly as it was. --force reads every
# pointer first and must refuse before writing anything.
source "$(dirname "$0")/common.sh"

cc -O2 -fno-ipa-ra "$PROGRAMS/sharedtls.c" -o "$T/sharedtls"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_work(int x) { return 3 * x + 2; }
GRAFT_REPLACE(work, new_work);
C
build_patch "$T/fix.c" "$T/sharedtls" "$T/fix.graft"

start_target s "$T/sharedtls"
pid=${TPID[s]}
twin_runs() { [[ $(ask s twin) -gt 0 ]]; }
wait_until 10 twin_runs || fail "the twin thread did not start"
expect s call 16
original=$(ask s "bytes work")

for model in hybrid lazy; do
  graft_fails 1 apply "$T/fix.graft" --pid "$pid" --model "$model" --timeout 5
  [[ $GRAFT_ERROR == *"share the thread pointer"* ]] ||
    fail "$model: the apply did not say that two threads share a thread pointer"
  [[ $(ask s "bytes work") == "$original" ]] || fail "$model: the entry of work() changed"
  [[ -z $(graft_regions "$pid") ]] || fail "$model: a patch region is left: $(graft_regions "$pid")"
  expect s call 16
done
graft_fails 1 apply "$T/fix.graft" --pid "$pid" --model hybrid --force
[[ $GRAFT_ERROR == *"share the thread pointer"* ]] || fail "--force: no reason given"
[[ $(ask s "bytes work") == "$original" ]] || fail "--force: the entry of work() changed"
expect s call 16
[[ $(ask s twin) -gt 0 ]] || fail "the twin thread is gone"
log "ok: refused and reversed, the process as it was"
