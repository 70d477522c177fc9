#!/usr/bin/env bash
# Damaged patch files: empty, truncated (several ways), trailing bytes, bad
# magic, a manifest that is no longer JSON, a function whose recorded sha256
# or address was changed (caught by the file's checksum; and, with the
# checksum recomputed, by graft's check of the function in the process), and
# a file that is not a patch at all. Each is a one-line error and a non-zero
# exit, and the process is left untouched.
source "$(dirname "$0")/common.sh"

build_basic_with_compute_fix

start_target b "$T/basic"
pid=${TPID[b]}
bytes=$(ask b "bytes compute")

untouched() {
  assert_untouched "$pid"
  [[ $(ask b "bytes compute") == "$bytes" ]] || fail "$1: the bytes of compute changed"
  [[ $(ask b call) == "7 0" ]] || fail "$1: compute does not behave as before"
}

for how in empty header-only truncate-half truncate-1 trailing magic json sha256 address \
           sha256+rehash address+rehash; do
  what=$("$PYTHON" "$PROGRAMS/corrupt.py" "$T/fix.graft" "$T/bad-$how.graft" "$how")
  log "--- $how: $what"
  graft_fails any apply "$T/bad-$how.graft" --pid "$pid"
  case $how in
    empty | magic) [[ $GRAFT_ERROR == *"not a graft patch file"* ]] ;;
    header-only | truncate-* | trailing) [[ $GRAFT_ERROR == *truncated* ]] ;;
    # The file's checksum catches any changed byte before the manifest is read.
    json | sha256 | address) [[ $GRAFT_ERROR == *"checksum mismatch"* ]] ;;
    # A well-formed file whose function does not match the process.
    *+rehash) [[ $GRAFT_ERROR == *"compute"*differs* ]] ;;
  esac || fail "$how: unexpected error: $GRAFT_ERROR"
  # `graft info' refuses the file-level damage too.
  case $how in
    *+rehash) ;;
    *) graft_fails any info "$T/bad-$how.graft" ;;
  esac
  untouched "$how"
done

log "--- an ELF file instead of a patch"
graft_fails any apply "$T/basic" --pid "$pid"
[[ $GRAFT_ERROR == *"not a graft patch file"* ]] || fail "unexpected error: $GRAFT_ERROR"
untouched elf

log "--- a patch file that does not exist"
graft_fails any apply "$T/no-such.graft" --pid "$pid"
[[ $GRAFT_ERROR == *no-such.graft* ]] || fail "the error does not name the file: $GRAFT_ERROR"
untouched missing

# The intact file still applies.
apply_ok "$T/fix.graft" "$pid"
[[ $(ask b call) == "600 "* ]] || fail "the intact patch does not work"
