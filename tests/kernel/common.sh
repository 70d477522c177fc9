# Shared setup of the kernel tests (sourced by tests/kernel/*.sh).
#   bash tests/kernel/NAME.sh [GRAFT [INCLUDE_DIR]]
set -euo pipefail
KTEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$KTEST_DIR/../.." && pwd)
TEST_NAME=$(basename "$0" .sh)
GRAFT=${1:-${GRAFT:-$REPO_ROOT/build/graft}}
export GRAFT_INCLUDE_DIR=${2:-${GRAFT_INCLUDE_DIR:-$REPO_ROOT/include}}
. "$REPO_ROOT/scripts/kernel/lib.sh"
RELEASE=$GRAFT_KERNEL_RELEASE

fail() {
  echo "FAIL $TEST_NAME: $*" >&2
  exit 1
}
[[ -x $GRAFT ]] || fail "graft binary not found: $GRAFT"

# The kernel, its headers and QEMU: downloaded once into the cache.
if ! [[ -f $(kernel_root "$RELEASE")/.ready ]] && [[ $(id -u) -ne 0 ]]; then
  echo "SKIP $TEST_NAME: the kernel cache $GRAFT_KERNEL_CACHE is not prepared and fetching needs root" >&2
  exit 77
fi
"$REPO_ROOT/scripts/kernel/fetch.sh" >/dev/null || fail "scripts/kernel/fetch.sh failed"

WORK=$(mktemp -d "/tmp/graft-ktest-$TEST_NAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# kbuild PATCH [graft build options...]: builds tests/kernel/patches/PATCH.c
# into $WORK/PATCH.ko.
kbuild() {
  local patch=$1
  shift
  "$GRAFT" build --kernel --from-source "$KTEST_DIR/patches/$patch.c" --kernel-release "$RELEASE" \
    -o "$WORK/$patch.ko" "$@" >"$WORK/$patch.build.log" 2>&1 ||
    { cat "$WORK/$patch.build.log" >&2; fail "graft build --kernel $patch"; }
  echo "built $patch.ko: $(tail -n1 "$WORK/$patch.build.log")"
}

# tamper_manifest MODULE COPY: a copy of MODULE whose recorded original code
# differs in one byte, the 6th (after the masked ftrace site; not one the
# kernel rewrites at boot), for the run-pre check's byte comparison.
tamper_manifest() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
key = b'"bytes":"'
at = data.find(key)
assert at > 0, "no manifest bytes"
at += len(key) + 2 * 5
data[at] = ord("0" if chr(data[at]) != "0" else "1")
open(sys.argv[2], "wb").write(data)
PY
}

# build_reproducers: tests/kernel/reproducers/fix_check.c into $WORK/fix_check.
build_reproducers() {
  gcc -static -O2 -Wall -Werror -o "$WORK/fix_check" "$KTEST_DIR/reproducers/fix_check.c" ||
    fail "cannot build the reproducers"
}

# run_guest SCRIPT [--file F]...: boots the test kernel in QEMU with graft
# and the files, runs SCRIPT there, prints the guest's part of the console
# and the wall time, and fails the test if the guest's script failed.
run_guest() {
  local script=$1 start=$SECONDS status=0
  shift
  "$REPO_ROOT/scripts/kernel/run-guest.sh" --quiet --log "$WORK/console.log" --graft "$GRAFT" --timeout 1200 \
    "$@" "$script" || status=$?
  tr -d '\r' <"$WORK/console.log" | sed -n '/^GRAFT-GUEST-START/,/^GRAFT-GUEST-EXIT/p'
  echo "guest: $((SECONDS - start)) s wall"
  [[ $status -eq 0 ]] || fail "the guest test failed (status $status)"
}
