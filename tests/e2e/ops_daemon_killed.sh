#!/usr/bin/env bash
# Killing graft daemon at any moment leaves no process half patched: the
# daemon is killed (SIGKILL) at each step of the write protocol of an apply
# it makes to a process that has just started (GRAFT_FAULT, as tests/soak
# does for graft apply), under the default model and under stop (from the
# host configuration), and at random moments; the target keeps running
# the old or the new code, never a mix nor a crash, and a daemon started
# again repairs what was left (the recovery graft apply runs first) and
# patches it: one applied patch, no second region, no W+X mapping.
# ctest-timeout: 300
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
build_patch "$T/fix.c" "$T/libfoo.so" "$T/fix.graft"
printf '{"audit_log": "%s"}\n' "$T/audit.log" >"$T/policy"
export GRAFT_POLICY=$T/policy GRAFT_STORE=$T/store
graft_ok store add "$T/fix.graft"

# The answer of a target that runs the old or the new foo_compute.
old_or_new() {
  local got
  got=$(ask "$1" call)
  [[ $got == "7 "* || $got == "300 "* ]] || fail "$1 answered \`$got': neither the old nor the new code"
}

trial() {
  local name=$1 fault=$2 delay=$3 daemon pid regions
  start_target "$name" "$T/libmain"
  pid=${TPID[$name]}
  # The daemon sees the process at its start sync: each trial kills it
  # inside the apply it makes then (or at a random moment of it).
  GRAFT_FAULT=$fault "$GRAFT" daemon --kernel-cmdline /dev/null "${CONFIG[@]}" >/dev/null 2>"$T/$name.daemon.log" &
  daemon=$!
  bg_track $daemon
  if [[ -n $delay ]]; then
    sleep "$delay"
    kill -KILL $daemon 2>/dev/null || true
  fi
  local rc=0
  wait_bounded $daemon 20 || rc=$?
  if [[ -z $delay && $rc -ne 137 ]]; then
    cat "$T/$name.daemon.log" >&2
    fail "$name: the daemon did not die at $fault (exit $rc)"
  fi
  old_or_new "$name"
  assert_no_wx "$pid"
  log "$name: killed at ${fault:-${delay}s}; state $(list_state "$pid" || true), answers $(ask "$name" call)"

  # Started again, the daemon repairs and patches.
  "$GRAFT" daemon --kernel-cmdline /dev/null >/dev/null 2>"$T/$name.daemon2.log" &
  daemon=$!
  bg_track $daemon
  wait_until 20 grep -q "sync (start)" "$T/$name.daemon2.log" || fail "$name: the second daemon did not sync"
  kill -TERM $daemon
  wait_bounded $daemon 10 || fail "$name: the second daemon failed"
  [[ $(ask "$name" call) == "300 "* ]] || { cat "$T/$name.daemon2.log" >&2; fail "$name: not patched after the restart"; }
  [[ $(list_state "$pid") == applied ]] || fail "$name: the patch is not in state applied"
  regions=$(graft_regions "$pid" | awk '{print $6}' | sort -u | wc -l)
  [[ $regions -eq 1 ]] || fail "$name: $regions graft regions, expected 1: $(graft_regions "$pid")"
  [[ $(patch_count "$pid") -eq 1 ]] || fail "$name: more than one patch listed"
  assert_no_wx "$pid"
  stop_target "$name"
}

i=0
# The default model (hybrid) writes each entry in running code: int3 first.
CONFIG=()
for point in remote-syscall:1 remote-syscall:3 region-created record-written image-written \
             entry-int3:1 entry-tail:1; do
  trial "p$((i++))" "$point" ""
done
# The stop model, from the host's configuration.
printf '{"model": "stop"}\n' >"$T/graft.conf"
CONFIG=(--config "$T/graft.conf")
for point in image-written stopped entry-written:1 applied; do
  trial "p$((i++))" "$point" ""
done
CONFIG=()
for delay in 0.004 0.008 0.012 0.016 0.025; do
  trial "p$((i++))" "" "$delay"
done
n=$(grep -h "repaired first" "$T"/p*.daemon2.log | wc -l)
log "$n restarts repaired what a killed daemon left"
[[ $n -ge 5 ]] || fail "only $n restarts had something to repair: the kills did not land mid-apply"
