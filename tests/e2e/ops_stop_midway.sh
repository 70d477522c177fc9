#!/usr/bin/env bash
# SIGTERM to the daemon, or SIGINT to `graft sync', while an apply waits
# for a thread to leave the patched function: the apply rolls back at once,
# no other apply starts, the daemon exits 0 within seconds (not after the
# batch) saying what it left, sync exits 130 and reports every process it
# did not patch; every process is as it was.
# ctest-timeout: 180
source "$(dirname "$0")/common.sh"

cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_spin_here(int x) { return x + 2; }
GRAFT_REPLACE(spin_here, new_spin_here);
C
build_patch "$T/fix.c" "$T/basic" "$T/fix.graft"
S=$T/store
printf '{"audit_log": "%s"}\n' "$T/audit.log" >"$T/policy"
export GRAFT_POLICY=$T/policy GRAFT_STORE=$S
echo "BOOT_IMAGE=/vmlinuz quiet" >"$T/cmdline"
graft_ok store add "$T/fix.graft"

# Three processes, each with a thread that never leaves spin_here: an
# apply waits for it until its --timeout (60 s).
pids=()
for n in a b c; do
  start_target $n "$T/basic"
  [[ $(ask $n spin) -gt 0 ]] || fail "$n: the spinner did not start"
  pids+=("${TPID[$n]}")
done
some_region() {
  local p
  for p in "${pids[@]}"; do [[ -n $(graft_regions "$p") ]] && return 0; done
  return 1
}
all_untouched() {
  local p
  for p in "${pids[@]}"; do assert_untouched "$p"; done
}

# The daemon, one process at a time.
"$GRAFT" daemon --kernel-cmdline "$T/cmdline" --jobs 1 --timeout 60 >"$T/daemon.out" 2>"$T/daemon.log" &
daemon=$!
bg_track $daemon
trap 'rc=$?; [[ $rc -eq 0 || ! -f $T/daemon.log ]] || sed "s/^/    daemon| /" "$T/daemon.log" >&2; cleanup $rc' EXIT
wait_until 30 some_region || fail "the daemon did not start an apply"
sleep 0.5  # well inside the transition's wait
start=$SECONDS
kill -TERM $daemon
rc=0; wait_bounded $daemon 20 || rc=$?
log "daemon exited $rc, $((SECONDS - start)) s after SIGTERM"
sed 's/^/    daemon| /' "$T/daemon.log"
[[ $rc -eq 0 ]] || fail "the daemon exited $rc on SIGTERM"
[[ $((SECONDS - start)) -le 10 ]] || fail "the daemon took $((SECONDS - start)) s to stop"
grep -q "stopping (SIGTERM): 1 running applies rolled back, the processes as they were; 2 applies not started" \
  "$T/daemon.log" || fail "the daemon's last words do not say what it left"
! grep -q "cannot apply" "$T/daemon.log" || fail "an interrupted apply was logged as a failure of the process"
all_untouched
# Not remembered as failures: `graft status' does not call them unpatchable.
rc=0; "$GRAFT" status --json >"$T/status.json" || rc=$?
[[ $rc -eq 1 ]] || fail "status exited $rc"
states=$(json_get '",".join(sorted(p["state"] for p in j["patches"][0]["processes"]))' <"$T/status.json")
[[ $states == "not-patched,not-patched,not-patched" ]] || fail "status after the stop: $states"

# graft sync, interrupted with SIGINT (Ctrl-C).
"$GRAFT" sync --jobs 1 --timeout 60 --json >"$T/sync.json" 2>"$T/sync.err" &
sync=$!
bg_track $sync
wait_until 30 some_region || fail "sync did not start an apply"
sleep 0.5
start=$SECONDS
kill -INT $sync
rc=0; wait_bounded $sync 20 || rc=$?
log "sync exited $rc, $((SECONDS - start)) s after SIGINT"
[[ $rc -eq 130 ]] || fail "sync exited $rc on SIGINT, expected 130: $(cat "$T/sync.err")"
outcomes=$(json_get '",".join(sorted(r["outcome"] for r in j["results"]))' <"$T/sync.json")
[[ $outcomes == "interrupted,interrupted,interrupted" ]] || fail "sync's outcomes: $outcomes"
[[ $(json_get 'j["interrupted"], j["ok"], j["results"][0]["error_code"]' <"$T/sync.json") == "(3, False, 'interrupted')" ]] ||
  fail "sync's JSON: $(cat "$T/sync.json")"
all_untouched

# The same sync in text, and then left to finish: the spinners stop, the
# patch goes in.
"$GRAFT" sync --jobs 1 --timeout 60 >"$T/sync.out" 2>&1 &
sync=$!
bg_track $sync
wait_until 30 some_region || fail "sync did not start an apply"
kill -INT $sync
rc=0; wait_bounded $sync 20 || rc=$?
[[ $rc -eq 130 ]] || fail "sync exited $rc on SIGINT"
grep -q "3 not applied: interrupted by SIGINT (those processes are as they were)" "$T/sync.out" ||
  fail "sync's summary: $(cat "$T/sync.out")"
all_untouched
for n in a b c; do ask $n unspin >/dev/null; done
graft_ok sync --jobs 1
for p in "${pids[@]}"; do [[ $(patch_count "$p") -eq 1 ]] || fail "pid $p was not patched by the last sync"; done
