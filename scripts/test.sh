#!/usr/bin/env bash
# Installs what graft needs, builds it, and runs every test (unit and
# end-to-end) with CTest. As root on Debian 12. Exit status is ctest's.
#
#   GRAFT_BUILD_DIR   build directory (default: build)
#   CTEST_ARGS        more ctest arguments, e.g. "-L e2e" or "-R stacking"
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${GRAFT_BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
export GRAFT_BUILD_DIR=$BUILD_DIR

# The packages graft needs (build, unit tests, benchmark).
"$ROOT/scripts/install-deps.sh"

# And what only the end-to-end tests use: strace (a process already traced),
# setpriv (run graft as nobody), compilers and binutils for the targets,
# libc6-dbg (a stripped library patched through its separate debug file),
# ansible-core (the collection's test, ops_ansible), dpkg-dev (CPack's
# dependency list of the .deb, ops_deb), musl-tools (musl-linked targets,
# target_matrix) and golang-go (Go programs, go_program). Installed if missing.
TEST_PACKAGES=(strace util-linux binutils gcc g++ python3 libc6-dbg ansible-core dpkg-dev musl-tools golang-go)
missing=()
for p in "${TEST_PACKAGES[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "test: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-o DPkg::Lock::Timeout=600)
  if ! apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" \
      </dev/null >/tmp/graft-test-deps.log 2>&1; then
    apt-get "${apt_opts[@]}" update </dev/null >>/tmp/graft-test-deps.log 2>&1
    apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" \
      </dev/null >>/tmp/graft-test-deps.log 2>&1 ||
      { echo "test: FAILED to install ${missing[*]} (see /tmp/graft-test-deps.log)" >&2; exit 1; }
  fi
fi

# Configure and build (scripts/build.sh runs install-deps.sh again: a no-op).
"$ROOT/scripts/build.sh"

rc=0
# shellcheck disable=SC2086
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 ${CTEST_ARGS:-} || rc=$?
exit $rc
