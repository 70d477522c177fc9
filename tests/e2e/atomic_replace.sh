#!/usr/bin/env bash
# Atomic replace: over a stack of two patches (A: deposit with a shadow
# counter, describe, version; B on top of it: describe, version), a
# cumulative patch C that replaces describe only takes their place in one
# switch: describe runs C's code, deposit and version (patched twice) run
# their original code again, A's and B's regions are gone,
# `graft list` shows C alone, and C still reads the shadows A created. Then
# C is reverted: everything original. The same with `graft build --replace`
# instead of GRAFT_CUMULATIVE, and with the workers busy all along.
source "$(dirname "$0")/common.sh"

cc -pthread -fno-ipa-ra "$PROGRAMS/ledger.c" -o "$T/ledger"
cat >"$T/a.c" <<'C'
#include <graft/patch.h>
#include <graft/runtime.h>
#include <stdio.h>
struct account { long balance; int id; };
struct extra { long deposits; };
static void deposit_a(struct account *a, long amount) {
  struct extra *x = graft_shadow_get_or_alloc(a, 1, sizeof *x, NULL, NULL);
  if (x) __atomic_add_fetch(&x->deposits, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&a->balance, amount, __ATOMIC_RELAXED);
}
static int describe_a(struct account *a, char *out, size_t n) {
  return snprintf(out, n, "A %d", a->id);
}
static int version_a(void) { return 3; }
GRAFT_REPLACE(deposit, deposit_a);
GRAFT_REPLACE(describe, describe_a);
GRAFT_REPLACE(version, version_a);
C
cat >"$T/b.c" <<'C'
#include <graft/patch.h>
#include <stdio.h>
struct account { long balance; int id; };
static int version_b(void) { return 2; }
static int describe_b(struct account *a, char *out, size_t n) {
  return snprintf(out, n, "B %d", a->id);
}
GRAFT_REPLACE(version, version_b);
GRAFT_REPLACE(describe, describe_b);
C
# c: cumulative; describe shows the counter A kept ("C id deposits").
cumulative() {
  cat >"$T/$1.c" <<C
#include <graft/patch.h>
#include <graft/runtime.h>
#include <stdio.h>
struct account { long balance; int id; };
struct extra { long deposits; };
static int describe_c(struct account *a, char *out, size_t n) {
  struct extra *x = graft_shadow_get(a, 1);
  return snprintf(out, n, "C %d %ld", a->id, x ? x->deposits : -1L);
}
GRAFT_REPLACE(describe, describe_c);
$2
C
}
cumulative c 'GRAFT_CUMULATIVE;'
cumulative c_flag ''
cumulative c_veto 'GRAFT_CUMULATIVE; static int no(void) { return 5; } GRAFT_PRE_PATCH(no);'
build_patch "$T/a.c" "$T/ledger" "$T/a.graft"
build_patch "$T/b.c" "$T/ledger" "$T/b.graft"
build_patch "$T/c.c" "$T/ledger" "$T/c.graft"
build_patch "$T/c_veto.c" "$T/ledger" "$T/c_veto.graft"
build_patch "$T/c_flag.c" "$T/ledger" "$T/c_flag.graft" --replace
grep -q cumulative "$T/graft.out" || fail "graft build --replace does not say the patch is cumulative"

run() {
  local label=$1 patch=$2 pid
  start_target $label "$T/ledger"
  pid=${TPID[$label]}
  apply_ok "$T/a.graft" "$pid"
  apply_ok "$T/b.graft" "$pid"
  expect $label "describe 5" "B 5"
  expect $label version 2
  local regions_a
  regions_a=$(graft_regions "$pid" | awk '/graft:[0-9a-f]/ {print $6}' | sort -u | wc -l)
  [[ $regions_a -eq 2 ]] || fail "$label: expected 2 patch regions, found $regions_a"
  sleep 0.3  # deposits under A

  # A cumulative patch whose pre_patch vetoes changes nothing: A and B stay.
  graft_fails 1 apply "$T/c_veto.graft" --pid "$pid"
  [[ $GRAFT_ERROR == *"returned 5 (a veto)"* ]] || fail "$label: no veto: $GRAFT_ERROR"
  graft_ok list --pid "$pid" --json
  [[ $(json_get '[p["name"] for p in j["processes"][0]["patches"]]' <"$T/graft.out") == '["a", "b"]' ]] ||
    fail "$label: the vetoed cumulative patch changed the stack"
  expect $label "describe 5" "B 5"
  expect $label version 2

  apply_ok "$T/$patch.graft" "$pid"
  grep -q "note: replaced patch a " "$T/graft.out" || fail "$label: apply does not say it replaced a"
  grep -q "note: replaced patch b " "$T/graft.out" || fail "$label: apply does not say it replaced b"
  expect $label version 1
  graft_ok list --pid "$pid" --json
  [[ $(json_get '[(p["name"], p["cumulative"]) for p in j["processes"][0]["patches"]]' <"$T/graft.out") == \
     "[[\"$patch\", true]]" ]] || fail "$label: graft list should show $patch alone"
  [[ $(graft_regions "$pid" | awk '/graft:[0-9a-f]/ {print $6}' | sort -u | wc -l) -eq 1 ]] ||
    fail "$label: the replaced patches' regions are still mapped"
  # deposit is the original again: A's counter stops while balances grow.
  expect $label pause paused
  local c1 b1 c2 b2
  read -r _ _ c1 <<<"$(ask $label "describe 5")"
  b1=$(ask $label "balance 5")
  [[ $c1 -gt 0 ]] || fail "$label: C does not see the shadow counter A kept ($c1)"
  expect $label resume resumed
  sleep 0.3
  expect $label pause paused
  read -r _ _ c2 <<<"$(ask $label "describe 5")"
  b2=$(ask $label "balance 5")
  [[ $c2 -eq $c1 && $b2 -gt $b1 ]] ||
    fail "$label: after the replace, deposit should be the original (counter $c1 -> $c2, balance $b1 -> $b2)"
  expect $label resume resumed
  log "$label: C replaced A and B in one switch; A's shadows still read ($c1)"

  graft_ok revert $patch --pid "$pid"
  expect $label version 1
  [[ $(ask $label "describe 5") =~ ^5\ [0-9]+$ ]] || fail "$label: describe is not the original"
  [[ $(patch_count "$pid") -eq 0 ]] || fail "$label: patches left"
  [[ -z $(graft_regions "$pid" | grep -v 'graft:rt') ]] || fail "$label: patch regions left"
  assert_no_wx "$pid"
  stop_target $label
}

run macro c
run flag c_flag
