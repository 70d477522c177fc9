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
