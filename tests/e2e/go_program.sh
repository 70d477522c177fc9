#!/usr/bin/env bash
# Go programs, with cgo (the patch replaces its C function compute()) and
# without: graft cannot check the stacks of threads running Go code (no
# DWARF CFI; Go's frames are in .gopclntab), so it refuses before anything
# is written, with that reason, under every model; the program keeps
# running, untouched.
source "$(dirname "$0")/common.sh"

command -v go >/dev/null || { echo "go is not installed (scripts/test.sh installs golang-go)"; exit 77; }
export GOCACHE=$T/gocache GOPATH=$T/gopath GOFLAGS=-mod=mod
cp -r "$PROGRAMS/gocgo" "$T/src"
(cd "$T/src" && go build -o "$T/cgo" . && CGO_ENABLED=0 go build -tags nocgo -o "$T/plain" .) ||
  fail "go build failed"
cat >"$T/fix.c" <<'C'
#include <graft/patch.h>
static int new_compute(int x) { return x * 3; }
GRAFT_REPLACE(compute, new_compute);
C
build_patch "$T/fix.c" "$T/cgo" "$T/fix.graft"

start_target cgo "$T/cgo"
start_target plain "$T/plain"
expect cgo call 11
for model in hybrid stop lazy; do
  graft_fails 1 apply "$T/fix.graft" --pid "${TPID[cgo]}" --model $model --timeout 5
  [[ $GRAFT_ERROR == *"runs a Go program"*".gopclntab"* ]] || fail "$model: not refused as a Go program: $GRAFT_ERROR"
  [[ $GRAFT_ERROR == *"process left unchanged"* ]] || fail "$model: does not say the process is unchanged"
  assert_untouched "${TPID[cgo]}"
  expect cgo call 11
done
# The plain program is no patch's target; it is refused as a Go program
# too, never half inspected.
graft_fails 1 apply "$T/fix.graft" --pid "${TPID[plain]}"
[[ $GRAFT_ERROR == *"runs a Go program"* ]] || fail "plain Go: $GRAFT_ERROR"
assert_untouched "${TPID[plain]}"
expect plain call 11
log "ok"
