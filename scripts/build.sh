#!/usr/bin/env bash
# Install the dependencies, then configure and build graft (Release with debug
# info) into build/. Prints a few lines; the full output is in build/build.log.
#
#   GRAFT_BUILD_DIR   build directory (default: build, relative to the repo)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${GRAFT_BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR

"$ROOT/scripts/install-deps.sh"

mkdir -p "$BUILD_DIR"
LOG=$BUILD_DIR/build.log
: >"$LOG"
start=$SECONDS

fail() {
  echo "build: FAILED: $1 (last lines of $LOG follow)" >&2
  tail -n 40 "$LOG" >&2 || true
  exit 1
}

show=${BUILD_DIR#"$PWD"/}
echo "build: configuring and building graft in $show/ (RelWithDebInfo, log: $show/build.log)"
echo "+ cmake -S $ROOT -B $BUILD_DIR -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo" >>"$LOG"
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  </dev/null >>"$LOG" 2>&1 || fail "cmake configure"

echo "+ ninja -C $BUILD_DIR" >>"$LOG"
ninja -C "$BUILD_DIR" </dev/null >>"$LOG" 2>&1 || fail "ninja"

[[ -x $BUILD_DIR/graft ]] || fail "the build did not produce $BUILD_DIR/graft"
echo "build: $show/graft is ready ($((SECONDS - start)) s)"
