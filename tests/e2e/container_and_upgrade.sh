#!/usr/bin/env bash
# Two places where the path a process's maps show is not the file on the
# host:
#  1. A container: a process in its own PID and mount namespace, running a
#     library and program bind-mounted at /opt/app (a path that does not
#     exist on the host), is patched from the host by its host pid and by
#     --all; graft reads the target's files through /proc, not the path.
#  2. The upgrade case: the library is replaced on disk after the process
#     started. The process still maps the old file (deleted): the patch of
#     the old build applies to it and not to a process of the new build;
#     the patch of the new build applies only to the new one.
source "$(dirname "$0")/common.sh"

tag="e2e-$$-$RANDOM-$(date +%s%N)"
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

# --- 1: a container.
mkdir -p "$T/app" /opt
cc -shared -fPIC -DFOO_TAG="\"$tag-ns\"" "$PROGRAMS/libfoo.c" -o "$T/app/libfoo.so"
cc -pthread "$PROGRAMS/libmain.c" -L"$T/app" -lfoo -Wl,-rpath,/opt/app -o "$T/app/libmain"
build_patch "$T/fix.c" "$T/app/libfoo.so" "$T/fix-ns.graft"
[[ ! -e /opt/app/libfoo.so ]] || fail "/opt/app/libfoo.so exists on the host: the test needs that path free"
# The target is the namespace's init (pid 1 inside): the bind mount exists
# only in its mount namespace.
TARGET_OWN_PID_NS=1 start_target ns unshare --pid --mount --fork --mount-proc --propagation private \
  sh -c "mkdir -p /opt/app && mount --bind '$T/app' /opt/app && exec /opt/app/libmain"
pid=$(pgrep -P "${TPID[ns]}" -x libmain || true)
[[ -n $pid ]] || fail "no libmain inside the namespace"
grep -q ' /opt/app/libfoo.so' "/proc/$pid/maps" || fail "the container's process does not map /opt/app/libfoo.so"
[[ $(readlink "/proc/$pid/ns/pid") != $(readlink /proc/self/ns/pid) ]] || fail "not in its own PID namespace"
expect ns call "7 0"
graft_ok apply "$T/fix-ns.graft" --pid "$pid"
[[ $(ask ns call) == "300 "* ]] || fail "the container's process does not run the patched code"
graft_ok revert fix-ns --pid "$pid"
[[ $(ask ns call) == "7 "* ]] || fail "the container's process still runs the patched code"
graft_ok apply "$T/fix-ns.graft" --all --json
[[ $(json_get '[r["pid"] for r in j["results"]]' <"$T/graft.out") == "[$pid]" ]] ||
  fail "apply --all did not patch the container's process (host pid $pid): $(cat "$T/graft.out")"
[[ $(ask ns call) == "300 "* ]] || fail "--all: the container's process does not run the patched code"
graft_ok revert fix-ns --pid "$pid"
assert_untouched "$pid"
stop_target ns

# --- 2: the library upgraded on disk.
cc -shared -fPIC -DFOO_TAG="\"$tag-v1\"" "$PROGRAMS/libfoo.c" -o "$T/libfoo.so"
cc -pthread "$PROGRAMS/libmain.c" -L"$T" -lfoo -Wl,-rpath,"$T" -o "$T/libmain"
build_patch "$T/fix.c" "$T/libfoo.so" "$T/fix-v1.graft"
start_target old "$T/libmain"
# The package manager's way: a new file renamed over the old one.
cc -shared -fPIC -DFOO_TAG="\"$tag-v2\"" "$PROGRAMS/libfoo.c" -o "$T/libfoo.so.new"
mv "$T/libfoo.so.new" "$T/libfoo.so"
grep -q 'libfoo.so (deleted)' "/proc/${TPID[old]}/maps" || fail "the old process does not map the deleted library"
start_target new "$T/libmain"
build_patch "$T/fix.c" "$T/libfoo.so" "$T/fix-v2.graft"

graft_ok apply "$T/fix-v1.graft" --all --json
[[ $(json_get '[r["pid"] for r in j["results"]]' <"$T/graft.out") == "[${TPID[old]}]" ]] ||
  fail "the old build's patch should patch only the old process: $(cat "$T/graft.out")"
[[ $(ask old call) == "300 "* ]] || fail "the old process does not run the patched code"
expect new call "7 0"
graft_fails 1 apply "$T/fix-v1.graft" --pid "${TPID[new]}"
[[ $GRAFT_ERROR == *build-id* || $GRAFT_ERROR == *"does not map"* ]] ||
  fail "the old build's patch on the new process: not refused for its build: $GRAFT_ERROR"
assert_untouched "${TPID[new]}"
graft_ok apply "$T/fix-v2.graft" --all --json
[[ $(json_get '[r["pid"] for r in j["results"]]' <"$T/graft.out") == "[${TPID[new]}]" ]] ||
  fail "the new build's patch should patch only the new process: $(cat "$T/graft.out")"
[[ $(ask new call) == "300 "* ]] || fail "the new process does not run the patched code"
graft_ok revert fix-v1 --pid "${TPID[old]}"
graft_ok revert fix-v2 --pid "${TPID[new]}"
[[ $(ask old call) == "7 "* ]] || fail "the old process still runs the patched code"
[[ $(ask new call) == "7 "* ]] || fail "the new process still runs the patched code"
log "ok"
