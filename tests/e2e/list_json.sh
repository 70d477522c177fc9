#!/usr/bin/env bash
# `graft list --json' shows the applied patch with its functions, and the
# record lives in the process: a later graft invocation (graft has exited in
# between) sees it, with and without --pid.
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern int counter;
int helper(int x);
static int new_compute(int x) { counter++; return helper(x) * 100; }
static int new_wait_here(int x) { return x; }
GRAFT_REPLACE(compute, new_compute);
GRAFT_REPLACE(wait_here, new_wait_here);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft" --name list-test
graft_ok info "$T/fix.graft" --json
id=$(json_get 'j["id"]' <"$T/graft.out")
[[ $id =~ ^[0-9a-f]{12}$ ]] || fail "unexpected patch id \`$id'"

start_target b "$T/basic"
pid=${TPID[b]}
graft_ok list --pid "$pid" --json
[[ $(json_get '[(p["pid"], p["patches"]) for p in j["processes"]]' <"$T/graft.out") == "[[$pid, []]]" ]] ||
  fail "list before the apply should show no patch"

apply_ok "$T/fix.graft" "$pid" --json
[[ $(json_get 'j["patch"]' <"$T/graft.out") == list-test ]] || fail "apply --json: wrong patch name"
[[ $(json_get 'j["patch_id"]' <"$T/graft.out") == "$id" ]] || fail "apply --json: wrong patch id"
applied_at=$(date +%s)

# A new graft process reads the record from the target's memory.
graft_ok list --pid "$pid" --json
cp "$T/graft.out" "$T/list.json"
q() { json_get "$1" <"$T/list.json"; }
[[ $(q 'len(j["processes"])') -eq 1 ]] || fail "list --pid shows several processes"
[[ $(q 'j["processes"][0]["pid"]') -eq $pid ]] || fail "list shows the wrong pid"
[[ $(q 'j["processes"][0]["command"]') == basic ]] || fail "list shows the wrong command"
[[ $(q 'j["processes"][0]["problems"]') == "[]" ]] || fail "list reports problems"
[[ $(q 'len(j["processes"][0]["patches"])') -eq 1 ]] || fail "list does not show one patch"
p='j["processes"][0]["patches"][0]'
[[ $(q "$p[\"id\"]") == "$id" ]] || fail "list: wrong id"
[[ $(q "$p[\"name\"]") == list-test ]] || fail "list: wrong name"
[[ $(q "$p[\"seq\"]") -eq 1 ]] || fail "list: wrong seq"
[[ $(q "$p[\"state\"]") == applied ]] || fail "list: wrong state"
[[ $(q "$p[\"target\"]") == "$T/basic" ]] || fail "list: wrong target"
[[ $(q "abs($p[\"applied_at\"] - $applied_at) <= 60") == true ]] || fail "list: wrong applied_at"
[[ $(q "sorted(f[\"symbol\"] for f in $p[\"functions\"])") == '["compute", "wait_here"]' ]] ||
  fail "list: wrong functions"
# Addresses: the functions' run-time addresses (the target is PIE) and
# replacements inside the graft mapping.
base=$(awk -v t="$T/basic" '$6 == t { split($1, a, "-"); print a[1]; exit }' "/proc/$pid/maps")
want=$(printf '0x%x' $((0x$base + 0x$(nm "$T/basic" | awk '$3 == "compute" { print $1 }'))))
[[ $(q "[f[\"address\"] for f in $p[\"functions\"] if f[\"symbol\"] == \"compute\"][0]") == "$want" ]] ||
  fail "list: compute is not at $want"
repl=$(q "[f[\"replacement\"] for f in $p[\"functions\"] if f[\"symbol\"] == \"compute\"][0]")
inside=0
while read -r range perms _ _ _ path; do
  lo=${range%-*} hi=${range#*-}
  if [[ $path == /memfd:graft:$id* && $perms == r-x* ]] && ((0x$lo <= repl && repl < 0x$hi)); then
    inside=1
  fi
done <"/proc/$pid/maps"
[[ $inside -eq 1 ]] || fail "list: replacement $repl is not in an executable graft mapping"

# Without --pid: every process with patches, ours among them. (Other tests
# may be applying patches meanwhile: a region whose record is not written yet
# is reported as a problem, with exit status 1; only ours matters here.)
graft_any() {
  local rc=0
  graft "$@" || rc=$?
  [[ $rc -le 1 ]] || fail "graft $* failed (exit $rc)"
}
graft_any list --json
[[ $(json_get "[p['patches'][0]['id'] for p in j['processes'] if p['pid'] == $pid]" <"$T/graft.out") == "[\"$id\"]" ]] ||
  fail "list without --pid does not show pid $pid"
graft_any list
grep -q "^pid $pid (basic): list-test (id $id) #1 applied" "$T/graft.out" || fail "human list output"

graft_ok revert "$id" --pid "$pid"
assert_untouched "$pid"
graft_any list --json
[[ $(json_get "[p for p in j['processes'] if p['pid'] == $pid]" <"$T/graft.out") == "[]" ]] ||
  fail "list still shows pid $pid after the revert"
