#!/usr/bin/env bash
# `apply --all' and `revert --all' work on several processes at once
# (--jobs): twelve processes map the patched library, 4 threads each. One
# is traced by strace (refused: graft will not patch it), one exits as soon
# as it is traced (while graft works on it). Every other one is patched and
# computes the patched result; the two failures stop nothing; each process
# gets one whole line (or one JSON result) and one audit line. Then
# `revert --all' puts every one back.
# ctest-timeout: 300
source "$(dirname "$0")/common.sh"

command -v strace >/dev/null || fail "strace is not installed (scripts/test.sh installs it)"

tag="e2e-$$-$RANDOM-$(date +%s%N)"
cc -shared -fPIC -DFOO_TAG="\"$tag\"" "$PROGRAMS/libfoo.c" -o "$T/libfoo.so"
# fleet: three workers calling foo_compute() and the main thread serving
# "call"; with `quit-when-traced', a fourth thread ends the process as soon
# as a tracer attaches (graft, midway through its work on it).
cat >"$T/fleet.c" <<'C'
#include <pthread.h>
#include <stdlib.h>
#include "serve.h"
int foo_compute(int x);
int foo_calls_now(void);
volatile int input = 3;
static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    foo_compute(input);
    usleep(200);
  }
  return NULL;
}
static void *quit_when_traced(void *arg) {
  (void)arg;
  char buf[4096];
  for (;;) {
    FILE *f = fopen("/proc/self/status", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    char *t = strstr(buf, "TracerPid:");
    if (t && atoi(t + 10) != 0) _exit(0);
    usleep(100);
  }
  return NULL;
}
static int handle(const char *cmd, char *reply, size_t n) {
  if (strcmp(cmd, "call") != 0) return 0;
  snprintf(reply, n, "%d %d", foo_compute(input), foo_calls_now());
  return 1;
}
int main(int argc, char **argv) {
  pthread_t t;
  int quitter = argc > 1 && strcmp(argv[1], "quit-when-traced") == 0;
  for (int i = 0; i < (quitter ? 2 : 3); ++i) pthread_create(&t, NULL, worker, NULL);
  if (quitter) pthread_create(&t, NULL, quit_when_traced, NULL);
  serve(handle);
  return 0;
}
C
cc -pthread "$T/fleet.c" -L"$T" -lfoo -Wl,-rpath,"$T" -o "$T/fleet"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
extern int foo_calls;
int foo_scale(int x);  /* static in libfoo.so */
static int new_foo_compute(int x) {
  __atomic_add_fetch(&foo_calls, 1, __ATOMIC_RELAXED);
  return foo_scale(x) * 50;
}
GRAFT_REPLACE(foo_compute, new_foo_compute);
C
build_patch "$T/fix.c" "$T/libfoo.so" "$T/fix.graft"
graft_ok info "$T/fix.graft" --json
id=$(json_get 'j["id"]' <"$T/graft.out")
printf '{"audit_log": "%s"}\n' "$T/audit.log" >"$T/policy"
export GRAFT_POLICY=$T/policy

good=()
for i in $(seq 1 10); do
  start_target "p$i" "$T/fleet"
  good+=("p$i")
done
start_target traced "$T/fleet"
start_target quitter "$T/fleet" quit-when-traced
for p in "${good[@]}" traced quitter; do expect $p call "7 0"; done
tpid=${TPID[traced]} qpid=${TPID[quitter]}

strace -f -qq -o /dev/null -p "$tpid" &
bg_track $!
traced_by_strace() {
  local tid
  for tid in $(ls "/proc/$tpid/task"); do
    [[ $(awk '/^TracerPid:/ { print $2 }' "/proc/$tpid/task/$tid/status") != 0 ]] || return 1
  done
}
wait_until 10 traced_by_strace || fail "strace did not attach to every thread of $tpid"

all_pids=$(printf '%s\n' "${TPID[@]}" | sort -n | paste -sd' ')
good_pids=$(for p in "${good[@]}"; do echo "${TPID[$p]}"; done | sort -n | paste -sd' ')

# check_patched WANT: every good process computes WANT ("300": patched, "7": not).
check_results() {
  local p got
  for p in "${good[@]}"; do
    got=$(ask $p call)
    [[ $got == "$1 "* ]] || fail "$p (pid ${TPID[$p]}) answers \`$got', expected $1"
  done
  log "the ten processes compute $1"
}

# 1. apply --all, JSON, 4 at once: one result per process, the two failures
# are theirs alone.
rc=0
graft apply "$T/fix.graft" --all --jobs 4 --json --timeout 5 || rc=$?
[[ $rc -eq 1 ]] || fail "apply --all exited with $rc, expected 1 (two processes failed)"
got=$(json_get '" ".join(str(p) for p in sorted(r["pid"] for r in j["results"]))' <"$T/graft.out")
[[ $got == "$all_pids" ]] || fail "apply --all worked on [$got], expected [$all_pids]"
ok=$(json_get '" ".join(str(p) for p in sorted(r["pid"] for r in j["results"] if r["ok"]))' <"$T/graft.out")
[[ $ok == "$good_pids" ]] || fail "apply --all succeeded on [$ok], expected [$good_pids]"
err=$(json_get "[r['error'] for r in j['results'] if r['pid'] == $tpid][0]" <"$T/graft.out")
[[ $err == *"already traced by process"* ]] || fail "pid $tpid (traced): unexpected error: $err"
err=$(json_get "[r['error'] for r in j['results'] if r['pid'] == $qpid][0]" <"$T/graft.out")
[[ $err == *"process $qpid"* && ($err == *"exited"* || $err == *"does not exist"* || $err == *"No such process"*) ]] ||
  fail "pid $qpid (exited): unexpected error: $err"
wait_until 5 bash -c "! kill -0 $qpid 2>/dev/null" || fail "the quitter (pid $qpid) did not exit when traced"
stop_target quitter
check_results 300
for p in "${good[@]}"; do assert_no_wx "${TPID[$p]}"; done
[[ $(patch_count "$tpid") -eq 0 ]] || fail "the traced process (pid $tpid) shows a patch"
[[ -z $(graft_regions "$tpid") ]] || fail "the traced process (pid $tpid) maps a graft region"
"$PYTHON" - "$T/audit.log" "$all_pids" <<'PY' || fail "audit log check failed"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
want = sorted(int(p) for p in sys.argv[2].split())
got = sorted(e["pid"] for e in events if e["action"] == "apply")
assert got == want, f"audit: apply events for {got}, expected {want}"
print(f"audit log: {len(events)} whole JSON lines, one per process")
PY

# 2. revert --all, text, 3 at once: one whole line per process, in the
# order of the pids.
graft_ok revert "$id" --all --jobs 3
lines=$(grep -c . "$T/graft.out" || true)
[[ $lines -eq 10 ]] || fail "revert --all printed $lines lines, expected one per patched process (10)"
order=$(sed -n 's/^pid \([0-9]*\): reverted .*/\1/p' "$T/graft.out" | paste -sd' ')
[[ $order == "$good_pids" ]] || fail "revert --all lines are for [$order], expected [$good_pids] in that order"
check_results 7
for p in "${good[@]}"; do assert_untouched "${TPID[$p]}"; done

# 3. apply --all again with the default number of jobs, text: ten lines
# "applied" and one FAILED for the traced process, then revert --all, JSON.
rc=0
graft apply "$T/fix.graft" --all || rc=$?
[[ $rc -eq 1 ]] || fail "apply --all exited with $rc, expected 1 (the traced process)"
[[ $(grep -c "^pid [0-9]*: applied " "$T/graft.out") -eq 10 ]] || fail "not ten \`applied' lines"
grep -q "^pid $tpid: FAILED: .*already traced" "$T/graft.out" || fail "no FAILED line for pid $tpid"
check_results 300
graft_ok revert "$id" --all --json
got=$(json_get '" ".join(str(r["pid"]) for r in j["results"] if r["ok"])' <"$T/graft.out")
[[ $got == "$good_pids" ]] || fail "revert --all --json reverted [$got], expected [$good_pids]"
check_results 7
for p in "${good[@]}"; do assert_untouched "${TPID[$p]}"; done
log "twelve processes: ten patched and reverted, two refused or gone"
