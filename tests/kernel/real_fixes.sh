#!/usr/bin/env bash
# Real fixes, each taken unchanged from the difference between linux 6.1.170
# and 6.1.176 (tests/kernel/diffs/6.1.176/), built with graft build --kernel
# --from-diff against Debian's 6.1.170 source and applied to Debian's 6.1.170
# kernel in the guest. For each fix a reproducer (reproducers/fix_check.c)
# shows the bug, the fix is applied live and the reproducer shows it gone,
# the fix is reverted and the bug is back. A fix of __init code is refused
# with the reason. docs/kernel.md has the table of these fixes.
. "$(dirname "$0")/common.sh"
SOURCE=$("$REPO_ROOT/scripts/kernel/fetch-source.sh" "$GRAFT_KERNEL_VERSION") || fail "fetch-source.sh failed"
DIFFS=$KTEST_DIR/diffs/6.1.176

# build NAME: diffs/6.1.176/NAME.patch into $WORK/NAME.ko, its output in
# $WORK/NAME.build.log.
build() {
  "$GRAFT" build --kernel --from-diff "$DIFFS/$1.patch" --source "$SOURCE" --kernel-release "$RELEASE" \
    -o "$WORK/$1.ko" >"$WORK/$1.build.log" 2>&1
}

# fix NAME CHECK FUNCTION...: NAME must build and replace each FUNCTION.
fixes=()
fix() {
  local name=$1 check=$2 start=$SECONDS f
  shift 2
  build "$name" || { cat "$WORK/$name.build.log" >&2; fail "build $name"; }
  cat "$WORK/$name.build.log"
  for f in "$@"; do
    grep -Eq "^  $f \(.*\): (changed directly|inlined change|changed)" "$WORK/$name.build.log" ||
      fail "$name: $f is not reported as replaced"
  done
  echo "built $name.ko in $((SECONDS - start)) s"
  fixes+=("$name:$check")
}

fix settimeofday_usec settimeofday __x64_sys_settimeofday __ia32_sys_settimeofday
fix pidfd_getfd_exiting pidfd_getfd pidfd_getfd
fix ipc_idr_alloc_limit shm_next_id ipc_addid

if build dcache_hash_min; then fail "a fix of __init functions was built"; fi
cat "$WORK/dcache_hash_min.build.log"
grep -Eq "cannot patch vfs_caches_init(_early)?: it is __init code" "$WORK/dcache_hash_min.build.log" || fail "no __init refusal reason"
[[ ! -e $WORK/dcache_hash_min.ko ]] || fail "a refused build wrote a module"

build_reproducers

# In the guest: for each fix, bug -> apply -> fixed -> revert -> bug.
{
  echo "set -e"
  echo "fixes='${fixes[*]}'"
  cat <<'T'
mkdir -p /var/log  # the audit log's directory (the initramfs has none)
expect() {  # expect fixed|bug CHECK
  out=$(/test/fix_check "$2") && got=fixed || { [ $? -eq 1 ] && got=bug || got=error; }
  echo "  $2 ($1 expected): $out"
  [ "$got" = "$1" ] || { echo "$2: expected $1, got $got"; exit 1; }
}
for entry in $fixes; do
  name=${entry%%:*} check=${entry#*:}
  echo "== $name"
  expect bug "$check"
  graft apply --kernel "/test/$name.ko" --timeout 120
  expect fixed "$check"
  graft revert --kernel "$name" --timeout 120
  expect bug "$check"
done
n=$(grep -c '"result":"ok"' /var/log/graft/audit.log)
echo "audit log: $n records of successful applies and reverts"
[ "$n" -eq 6 ] || { echo "expected 6 audit records"; exit 1; }
echo GUEST-OK
T
} >"$WORK/guest.sh"

files=(--file "$WORK/fix_check")
for entry in "${fixes[@]}"; do files+=(--file "$WORK/${entry%%:*}.ko"); done
run_guest "$WORK/guest.sh" "${files[@]}"
echo "PASS $TEST_NAME"
