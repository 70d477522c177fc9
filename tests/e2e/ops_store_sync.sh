#!/usr/bin/env bash
# The patch store and desired state: `graft store add` verifies what it
# stores (a damaged file, one unsigned under a signing policy, one whose
# target is not installed are refused with the reason), `graft sync` applies
# every stored patch to every process mapping its target, stacked patches in
# store order, and is idempotent; `graft apply --all` twice succeeds (the
# second says "already applied"); `graft status` lists every process with
# its state (table, JSON, exit status, Prometheus textfile), says why a
# traced process cannot be patched, and as non-root how many processes it
# could not inspect; a patch pinned to a roll-out tag is applied only with
# that tag.
# ctest-timeout: 180
source "$(dirname "$0")/common.sh"

tag="e2e-$$-$RANDOM-$(date +%s%N)"
cc -shared -fPIC -DFOO_TAG="\"$tag\"" "$PROGRAMS/libfoo.c" -o "$T/libfoo.so"
cc -pthread "$PROGRAMS/libmain.c" -L"$T" -lfoo -Wl,-rpath,"$T" -o "$T/libmain"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern int foo_calls;
int foo_scale(int x);
static int new_foo_compute(int x) {
  __atomic_add_fetch(&foo_calls, 1, __ATOMIC_RELAXED);
  return foo_scale(x) * 50;
}
GRAFT_REPLACE(foo_compute, new_foo_compute);
C
cat >"$T/scale.c" <<'C'
#include <graft/patch.h>
extern int foo_calls;
int foo_scale(int x);
static int newer_foo_compute(int x) {
  __atomic_add_fetch(&foo_calls, 1, __ATOMIC_RELAXED);
  return foo_scale(x) * 100 + 1;
}
GRAFT_REPLACE(foo_compute, newer_foo_compute);
C
build_patch "$T/fix.c" "$T/libfoo.so" "$T/fix.graft"
build_patch "$T/scale.c" "$T/libfoo.so" "$T/scale.graft"
S=$T/store
printf '{"audit_log": "%s"}\n' "$T/audit.log" >"$T/policy"
export GRAFT_POLICY=$T/policy GRAFT_STORE=$S

# ---- store add refuses what it cannot apply, with the reason.
head -c 300 "$T/fix.graft" >"$T/damaged.graft"
graft_fails 2 store add "$T/damaged.graft"
[[ $GRAFT_ERROR == "graft: refused: "* ]] || fail "no refusal for a damaged file: $GRAFT_ERROR"
cc -shared -fPIC -DFOO_TAG="\"other-$tag\"" "$PROGRAMS/libfoo.c" -o "$T/gone.so"
build_patch "$T/fix.c" "$T/gone.so" "$T/gone.graft"
rm "$T/gone.so"
graft_fails 2 store add "$T/gone.graft"
[[ $GRAFT_ERROR == *"is not installed here"* ]] || fail "no refusal for a missing target: $GRAFT_ERROR"
graft_ok keygen -o "$T/ops" --name ops
printf '{"require_signature": true, "trusted_keys": ["%s"], "audit_log": "%s"}\n' "$T/ops.pub" "$T/audit.log" \
  >"$T/signing-policy"
graft_fails 3 store add "$T/fix.graft" --policy "$T/signing-policy"
[[ $GRAFT_ERROR == *"unsigned"* ]] || fail "no refusal of an unsigned patch: $GRAFT_ERROR"
graft_ok store list --json
[[ $(json_get 'len(j["patches"])' <"$T/graft.out") == 0 ]] || fail "a refused patch was stored"

for p in p1 p2; do start_target $p "$T/libmain"; expect $p call "7 0"; done

graft_ok store add "$T/fix.graft" --json
[[ $(json_get 'j["changed"]' <"$T/graft.out") == true ]] || fail "store add did not report a change"
id=$(json_get 'j["patch"]["id"]' <"$T/graft.out")
graft_ok store add "$T/fix.graft" --json
[[ $(json_get 'j["changed"]' <"$T/graft.out") == false ]] || fail "adding the same patch again changed the store"

# ---- status before sync: two processes not patched, exit 1.
rc=0; "$GRAFT" status --json >"$T/status.json" || rc=$?
[[ $rc -eq 1 ]] || fail "status with unpatched processes exited $rc, expected 1"
[[ $(json_get '[(p["state"]) for p in j["patches"][0]["processes"]]' <"$T/status.json") == \
   '["not-patched", "not-patched"]' ]] || fail "status: $(cat "$T/status.json")"

# ---- sync patches both; a second sync changes nothing and succeeds.
graft_ok sync --json
[[ $(json_get '[j["applied"], j["already_applied"], j["failed"], j["ok"]]' <"$T/graft.out") == '[2, 0, 0, true]' ]] ||
  fail "first sync: $(cat "$T/graft.out")"
for p in p1 p2; do [[ $(ask $p call) == "300 "* ]] || fail "$p is not patched after sync"; assert_no_wx "${TPID[$p]}"; done
graft_ok sync --json
[[ $(json_get '[j["applied"], j["already_applied"], j["changed"]]' <"$T/graft.out") == '[0, 2, false]' ]] ||
  fail "second sync was not idempotent: $(cat "$T/graft.out")"
graft_ok sync
grep -q "already applied" "$T/graft.out" || fail "sync does not say already applied"

# ---- apply --all is idempotent: already applied is success, said so.
graft_ok apply "$T/fix.graft" --all --json
[[ $(json_get '[r["already_applied"] for r in j["results"]]' <"$T/graft.out") == '[true, true]' ]] ||
  fail "apply --all: $(cat "$T/graft.out")"
graft_ok apply "$T/fix.graft" --all
grep -q "already applied; nothing done" "$T/graft.out" || fail "apply --all does not say already applied"

# ---- a process started later: status says it is not patched; sync fixes it.
start_target p3 "$T/libmain"
expect p3 call "7 0"
rc=0; "$GRAFT" status --prometheus "$T/graft.prom" >"$T/status.txt" || rc=$?
cat "$T/status.txt"
[[ $rc -eq 1 ]] || fail "status exited $rc with an unpatched process"
grep -q "pid ${TPID[p3]} .*NOT PATCHED" "$T/status.txt" || fail "status does not show p3 unpatched"
grep -q "graft_patch_processes{patch=\"fix\",id=\"$id\",state=\"unpatched\"} 1" "$T/graft.prom" ||
  fail "prometheus: $(cat "$T/graft.prom")"
graft_ok sync
[[ $(ask p3 call) == "300 "* ]] || fail "p3 not patched by sync"
graft_ok status --prometheus "$T/graft.prom"
grep -q "graft_patch_processes{patch=\"fix\",id=\"$id\",state=\"patched\"} 3" "$T/graft.prom" ||
  fail "prometheus after sync: $(cat "$T/graft.prom")"
grep -q "^graft_last_sync_success 1" "$T/graft.prom" || fail "prometheus: no last sync"
ls "$T"/graft.prom.tmp.* 2>/dev/null && fail "a temporary prometheus file was left"

# ---- staged roll-out: a patch pinned to tag canary goes only where the tag is taken.
graft_ok store add "$T/scale.graft" --tag canary
graft_ok sync --json
[[ $(json_get 'j["applied"]' <"$T/graft.out") == 0 ]] || fail "a canary patch was applied without the tag"
graft_ok status --json
[[ $(json_get '[p["standing"] for p in j["patches"]]' <"$T/graft.out") == '["applicable", "other-tag"]' ]] ||
  fail "status does not show the canary patch as other-tag"
graft_ok sync --tag canary --json
[[ $(json_get 'j["applied"]' <"$T/graft.out") == 3 ]] || fail "sync --tag canary: $(cat "$T/graft.out")"
for p in p1 p2 p3; do [[ $(ask $p call) == "601 "* ]] || fail "$p does not run both stacked patches"; done
graft_ok list --pid "${TPID[p1]}" --json
[[ $(json_get '[p["name"] for p in j["processes"][0]["patches"]]' <"$T/graft.out") == '["fix", "scale"]' ]] ||
  fail "stacking order: $(cat "$T/graft.out")"
graft_ok store tag scale  # promoted: no tag, every host takes it
graft_ok status
grep -q "scale (id [0-9a-f]*) for .*, tag -: 3 patched" "$T/graft.out" || fail "promoted patch: $(cat "$T/graft.out")"

# ---- a traced process cannot be patched: status says why, sync fails (1).
command -v strace >/dev/null || fail "strace is not installed (scripts/test.sh installs it)"
start_target p4 "$T/libmain"
strace -f -qq -o /dev/null -p "${TPID[p4]}" &
strace_pid=$!
bg_track $strace_pid
wait_until 10 grep -q "TracerPid:[[:space:]]*$strace_pid" "/proc/${TPID[p4]}/status" || fail "strace did not attach"
rc=0; "$GRAFT" sync --json >"$T/sync.json" || rc=$?
[[ $rc -eq 1 ]] || fail "sync with a traced process exited $rc"
rc=0; "$GRAFT" status --json >"$T/status.json" || rc=$?
[[ $rc -eq 1 ]] || fail "status with a traced process exited $rc"
reason=$(json_get '[p["reason"] for p in j["patches"][0]["processes"] if p["pid"] == '"${TPID[p4]}"'][0]' <"$T/status.json")
[[ $reason == "traced: pid $strace_pid (strace)"* ]] || fail "status reason for a traced process: $reason"
kill -INT $strace_pid; wait $strace_pid 2>/dev/null || true
graft_ok sync
[[ $(ask p4 call) == "601 "* ]] || fail "p4 not patched once strace left"

# ---- as non-root: status counts the processes it could not inspect.
chmod -R a+rX "$S"
rc=0; setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$GRAFT" status --store "$S" >"$T/nobody.txt" 2>&1 || rc=$?
cat "$T/nobody.txt"
[[ $rc -eq 1 ]] || fail "status as nobody exited $rc, expected 1 (it cannot see everything)"
grep -q "^[0-9]* processes could not be inspected (graft runs as uid" "$T/nobody.txt" ||
  fail "status as nobody does not say how many processes it could not inspect"

# ---- every apply is in the audit log.
n=$("$PYTHON" -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if (lambda e: e["action"] == "apply" and e["result"] == "ok")(json.loads(l))))' "$T/audit.log")
[[ $n -ge 8 ]] || fail "audit log has $n successful applies, expected at least 8"
graft_ok store remove fix
graft_ok store list --json
[[ $(json_get '[p["name"] for p in j["patches"]]' <"$T/graft.out") == '["scale"]' ]] || fail "store remove"
