#!/usr/bin/env bash
# Shadow variables in a real target under concurrency: 8 threads deposit into
# 64 shared accounts all the time; a patch adds a per-account deposit counter
# as a shadow variable (graft_shadow_get_or_alloc from every thread at once).
# graft injects its runtime (the target does not link libgraft-rt). After
# the workers ran patched, every account's counter must equal exactly the
# deposits made since the patch: a lost race (two shadows for one account,
# a torn list) would lose counts. A second patch, stacked, reads the same
# shadows: one runtime, one table per process.
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/ledger.c" -o "$T/ledger"
cat >"$T/counted.c" <<'C'
#include <graft/patch.h>
#include <graft/runtime.h>
#include <stdio.h>
struct account { long balance; int id; };
#define SV_DEPOSITS 1
struct extra { long deposits; };
static void deposit_counted(struct account *a, long amount) {
  struct extra *x = graft_shadow_get_or_alloc(a, SV_DEPOSITS, sizeof *x, NULL, NULL);
  if (x) __atomic_add_fetch(&x->deposits, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&a->balance, amount, __ATOMIC_RELAXED);
}
static int describe_counted(struct account *a, char *out, size_t n) {
  struct extra *x = graft_shadow_get(a, SV_DEPOSITS);
  return snprintf(out, n, "%d %ld %ld", a->id, __atomic_load_n(&a->balance, __ATOMIC_RELAXED),
                  x ? __atomic_load_n(&x->deposits, __ATOMIC_RELAXED) : -1L);
}
GRAFT_REPLACE(deposit, deposit_counted);
GRAFT_REPLACE(describe, describe_counted);
C
cat >"$T/reader.c" <<'C'
#include <graft/patch.h>
#include <graft/runtime.h>
struct account { long balance; int id; };
extern struct account accounts[64];
struct extra { long deposits; };
/* version() now answers account 7's deposit counter, kept by the other patch. */
static int version_reads_shadow(void) {
  struct extra *x = graft_shadow_get(&accounts[7], 1);
  return x ? (int)x->deposits : -1;
}
GRAFT_REPLACE(version, version_reads_shadow);
C
build_patch "$T/counted.c" "$T/ledger" "$T/counted.graft"
build_patch "$T/reader.c" "$T/ledger" "$T/reader.graft"

start_target L "$T/ledger"
pid=${TPID[L]}
expect L pause paused
declare -a before
for k in $(seq 0 63); do before[$k]=$(ask L "balance $k"); done
apply_ok "$T/counted.graft" "$pid"
grep -q 'note: graft runtime injected at' "$T/graft.out" || fail "graft did not say it injected its runtime"
[[ $(graft_regions "$pid" | grep -c 'graft:rt') -ge 1 ]] || fail "no graft:rt region in the process"
expect L resume resumed
sleep 1.5
expect L pause paused
bad=0
deposits=0
for k in $(seq 0 63); do
  read -r id bal cnt <<<"$(ask L "describe $k")"
  [[ $id == "$k" ]] || fail "describe $k answered id $id"
  if [[ $cnt -ne $((bal - before[k])) ]]; then
    log "account $k: balance ${before[k]} -> $bal, but the shadow counter says $cnt"
    bad=$((bad + 1))
  fi
  deposits=$((deposits + cnt))
done
[[ $bad -eq 0 ]] || fail "$bad accounts lost counts"
[[ $deposits -gt 1000 ]] || fail "only $deposits deposits while patched: the workers did not run"
log "8 threads, 64 shared objects: $deposits deposits counted exactly in shadow variables"

# A second patch binds to the same runtime and sees the first one's shadows.
apply_ok "$T/reader.graft" "$pid"
grep -q 'injected' "$T/graft.out" && fail "the second patch injected a second runtime"
[[ $(graft_regions "$pid" | awk '/graft:rt/ {print $6}' | sort -u | wc -l) -eq 1 ]] ||
  fail "more than one graft runtime region"
read -r _ _ cnt7 <<<"$(ask L "describe 7")"
expect L version "$cnt7"

expect L resume resumed
graft_ok revert reader --pid "$pid"
graft_ok revert counted --pid "$pid"
expect L version 1
[[ $(ask L "describe 3") =~ ^3\ [0-9]+$ ]] || fail "describe is not the original after revert"
# The runtime stays: it holds the shadow variables (and their memory).
graft_ok list --pid "$pid"
grep -q 'graft runtime at' "$T/graft.out" || fail "graft list does not show the runtime"
[[ $(patch_count "$pid") -eq 0 ]] || fail "patches left after revert"
assert_no_wx "$pid"
stop_target L
