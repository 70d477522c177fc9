#!/usr/bin/env bash
# A shared library (libfoo.so, with a build-id) used by three processes: the
# patch is built against the library and applied with --all, which patches
# every process that maps it and only those; `revert ID --all' reverts all.
source "$(dirname "$0")/common.sh"

# A tag unique to this run: its own build-id, so --all sees only our processes.
tag="e2e-$$-$RANDOM-$(date +%s%N)"
cc -shared -fPIC -DFOO_TAG="\"$tag\"" "$PROGRAMS/libfoo.c" -o "$T/libfoo.so"
cc -pthread "$PROGRAMS/libmain.c" -L"$T" -lfoo -Wl,-rpath,"$T" -o "$T/libmain"
LC_ALL=C readelf -n "$T/libfoo.so" | grep 'Build ID' >/dev/null || fail "libfoo.so has no build-id"

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

# A process of the same program, without the library: never touched.
cc -pthread "$PROGRAMS/basic.c" -o "$T/basic"
start_target other "$T/basic"

pids=()
for p in p1 p2 p3; do
  start_target $p "$T/libmain"
  pids+=("${TPID[$p]}")
  expect $p call "7 0"
done

graft_ok apply "$T/fix.graft" --all --json
got=$(json_get 'sorted(r["pid"] for r in j["results"])' <"$T/graft.out")
want=$(printf '%s\n' "${pids[@]}" | sort -n | paste -sd, | sed 's/,/, /g; s/^/[/; s/$/]/')
[[ $got == "$want" ]] || fail "apply --all patched $got, expected $want"
[[ $(json_get 'all(r["ok"] for r in j["results"])' <"$T/graft.out") == true ]] ||
  fail "apply --all did not succeed everywhere"
for p in p1 p2 p3; do
  assert_no_wx "${TPID[$p]}"
  [[ $(ask $p call) == "300 "* ]] || fail "$p does not run the patched foo_compute"
  log "$p: patched"
  [[ $(patch_count "${TPID[$p]}") -eq 1 ]] || fail "$p: graft list does not show the patch"
done
assert_untouched "${TPID[other]}"

graft_ok revert "$id" --all --json
got=$(json_get 'sorted(r["pid"] for r in j["results"])' <"$T/graft.out")
[[ $got == "$want" ]] || fail "revert --all reverted $got, expected $want"
[[ $(json_get 'all(r["ok"] for r in j["results"])' <"$T/graft.out") == true ]] ||
  fail "revert --all did not succeed everywhere"
for p in p1 p2 p3; do
  [[ $(ask $p call) == "7 "* ]] || fail "$p still runs the patched foo_compute"
  assert_untouched "${TPID[$p]}"
done
log "all three reverted"

# Nothing left to revert: --all finds no process and says so.
graft_fails 1 revert "$id" --all
