#!/usr/bin/env bash
# Deliberately malicious patch files (programs/craft.py): well-formed files,
# checksum recomputed, whose manifest lies: a replacement outside the code,
# relocations outside the image or to unknown symbols, relocation types that
# do not exist or that a 32-bit truncation would turn into a real one, huge
# sizes, overlapping parts and functions, a function too short for the jump,
# numbers given as strings, floats or negative values, an object where a
# string belongs, an escape sequence in the name. Each is refused with a
# one-line error naming the file, before anything touches the process: no
# graft mapping, the function's bytes unchanged, the target behaves as
# before. The intact file then applies.
source "$(dirname "$0")/common.sh"

build_basic_with_compute_fix
start_target b "$T/basic"
pid=${TPID[b]}
bytes=$(ask b "bytes compute")

for how in replacement-out-of-code replacement-overruns-code relocation-outside-image \
           relocation-target-outside relocation-unknown-external relocation-unknown-type \
           relocation-type-truncated huge-bss huge-image-header huge-manifest-header parts-overlap \
           function-too-short function-huge functions-overlap size-negative address-string \
           address-float target-not-object name-escape no-functions; do
  "$PYTHON" "$PROGRAMS/craft.py" "$T/fix.graft" "$T/$how.graft" "$how" >/dev/null
  log "--- $how"
  graft_fails 2 apply "$T/$how.graft" --pid "$pid"
  [[ $GRAFT_ERROR == *"$T/$how.graft"* ]] || fail "$how: the error does not name the file: $GRAFT_ERROR"
  [[ $GRAFT_ERROR != *$'\e'* ]] || fail "$how: the error carries an escape character"
  graft_fails 2 info "$T/$how.graft"
  assert_untouched "$pid"
  [[ $(ask b "bytes compute") == "$bytes" ]] || fail "$how: the bytes of compute changed"
done
[[ $(ask b call) == "7 0" ]] || fail "compute does not behave as before"

apply_ok "$T/fix.graft" "$pid"
[[ $(ask b call) == "600 "* ]] || fail "the intact patch does not work"
