#!/usr/bin/env bash
# graft build --kernel --from-diff against Debian's 6.1.170 source
# (scripts/kernel/fetch-source.sh, cached with its prepared tree outside the
# clone): a diff of cmdline_proc_show is built, applied in the guest (its new
# code shows in /proc/cmdline) and reverted; a diff of an __init function is refused
# with the reason and writes no module.
. "$(dirname "$0")/common.sh"
SOURCE=$("$REPO_ROOT/scripts/kernel/fetch-source.sh" "$GRAFT_KERNEL_VERSION") || fail "fetch-source.sh failed"

diffbuild() {
  local name=$1 diff=$2
  "$GRAFT" build --kernel --from-diff "$KTEST_DIR/diffs/$diff" --source "$SOURCE" --kernel-release "$RELEASE" \
    -o "$WORK/$name.ko" >"$WORK/$name.build.log" 2>&1
}

start=$SECONDS
diffbuild cmdline_diff cmdline_synthetic.patch || { cat "$WORK/cmdline_diff.build.log" >&2; fail "build from diff"; }
cat "$WORK/cmdline_diff.build.log"
grep -q "cmdline_proc_show (fs/proc/cmdline.c): changed directly" "$WORK/cmdline_diff.build.log" ||
  fail "cmdline_proc_show not reported as changed"
echo "built from the diff in $((SECONDS - start)) s"

if diffbuild refused refused_init.patch; then fail "a diff of an __init function was built"; fi
cat "$WORK/refused.build.log"
grep -q "proc_cmdline_init.*__init" "$WORK/refused.build.log" || fail "no refusal reason"
[[ ! -e $WORK/refused.ko ]] || fail "a refused build wrote a module"

cat >"$WORK/guest.sh" <<'T'
set -e
before=$(cat /proc/cmdline)
graft apply --kernel /test/cmdline_diff.ko --timeout 120
after=$(cat /proc/cmdline)
echo "after apply: $after"
[ "$after" = "graft-diff $before" ] || { echo "new code did not run"; exit 1; }
graft revert --kernel cmdline_diff --timeout 120
[ "$(cat /proc/cmdline)" = "$before" ] || { echo "revert did not restore"; exit 1; }
echo GUEST-OK
T
run_guest "$WORK/guest.sh" --file "$WORK/cmdline_diff.ko"
echo "PASS $TEST_NAME"
